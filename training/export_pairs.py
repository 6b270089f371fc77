"""Write the cross-encoder's training pairs: every candidate sentence of every fitting question.

Retrieval, candidates and labels are exactly those of the answer scorer's training
(`training.collect.collect_training_sets`), so the two models see the same rows; each row is
written as the cross-encoder reads it (`qa.cross_encoder.pair_text`):

    {"q": question id, "set": question file, "question": ..., "text": pair text,
     "label": 0/1, "near_miss": bool, "key": "article_id:start:end"}

    python -m training.export_pairs --out PAIRS.jsonl.gz [--index-dir DIR]

Contrast rows ("augmented": true): for each positive sentence that holds a question's short
gold answer (a name, number or phrase), the same sentence with that answer cut out, labelled
negative. It still reports the event but no longer gives the detail asked for, which is what
the near-miss unanswerable questions look like ("What was the final score of ...?" against "X
won the final"); the feature model cannot tell the two apart.

The MultiHop-RAG reporting part and tests/data/eval.jsonl are never read (see TRAINING_SETS).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

from articleqa.qa.cross_encoder import candidate_key, pair_text
from articleqa.qa.evaluation import YES_NO
from training.collect import ROOT, TRAINING_SETS, collect_training_sets


def without_answer(text: str, answer: str) -> str | None:
    """`text` with every whole-word occurrence of `answer` cut out, or None if it has none."""
    answer = answer.strip()
    if len(answer) < 2 or answer.lower() in YES_NO:
        return None
    cut, n = re.subn(rf"(?i)(?<!\w){re.escape(answer)}(?!\w)", "", text)
    if not n:
        return None
    cut = re.sub(r"\s+([,.;:!?)])", r"\1", re.sub(r"\s{2,}", " ", cut)).strip()
    return cut if len(cut) >= 12 else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--index-dir", type=Path, default=ROOT / ".articleqa-train")
    parser.add_argument("--only", choices=[name for name, _a, _q in TRAINING_SETS], action="append")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    examples, _hashes = collect_training_sets(args.index_dir, only=args.only, limit=args.limit)
    rows = augmented = 0
    # mtime=0: the same pairs give the same bytes (the trainer records their hash).
    with open(args.out, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        for e in examples:
            for c, label in zip(e.scores.candidates, e.labels):
                row = {
                    "q": e.id,
                    "set": e.extra["set"],
                    "question": e.question,
                    "text": pair_text(c),
                    "label": int(label),
                    "near_miss": bool(e.extra.get("near_miss")),
                    "key": candidate_key(c),
                }
                gz.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
                rows += 1
                cut = without_answer(c.text, e.gold) if label and e.answerable else None
                if cut is not None:
                    contrast = dict(
                        row,
                        text=pair_text(c).replace(c.text, cut, 1),
                        label=0,
                        augmented=True,
                        key=row["key"] + ":answer-cut",
                    )
                    gz.write((json.dumps(contrast, ensure_ascii=False) + "\n").encode("utf-8"))
                    rows += 1
                    augmented += 1
    print(f"wrote {rows} pairs ({augmented} answer-cut contrasts) of {len(examples)} questions to {args.out}")


if __name__ == "__main__":
    main()
