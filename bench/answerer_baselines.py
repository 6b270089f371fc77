"""The extractive answerer against "return the top chunk" baselines, on the same retrieval.

    python -m bench.answerer_baselines --index-dir .articleqa [--questions tests/data/eval.jsonl]

For each answerable question: is the gold answer in (a) our answer, (b) the first sentence
of the top retrieved chunk, (c) the whole top chunk; and how long each is. (c) contains more
answers because it is 4-6 times longer: an answer a reader has to dig out of 800 characters.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from articleqa.index.chunking import split_sentences
from articleqa.qa import ArticleQA
from articleqa.qa.evaluation import contains, load_questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index-dir", type=Path, default=Path(".articleqa"))
    parser.add_argument("--questions", type=Path, default=Path("tests/data/eval.jsonl"))
    parser.add_argument("--k", type=int, default=6)
    args = parser.parse_args()
    questions = [q for q in load_questions(args.questions) if q.type == "factoid"]
    rows = {"answerer": [], "top chunk, first sentence": [], "top chunk": []}
    # Threshold 0: compare answers, not abstention.
    with ArticleQA.open(args.index_dir, k=args.k, answer_threshold=0.0) as qa:
        for q in questions:
            result = qa.retrieve(q.question, today=q.question_date)
            answer = qa.answer_from(q.question, result)
            top = result.passages[0].text
            first = split_sentences(top)[0]
            for name, text in (
                ("answerer", answer.text),
                ("top chunk, first sentence", top[first.start : first.end]),
                ("top chunk", top),
            ):
                rows[name].append((contains(text, q.answer), len(text)))
    summary = {
        name: {
            "accuracy": round(sum(ok for ok, _ in values) / len(values), 4),
            "mean_chars": round(sum(n for _, n in values) / len(values)),
        }
        for name, values in rows.items()
    }
    print(json.dumps({"questions": len(questions), "k": args.k, "results": summary}, indent=2))


if __name__ == "__main__":
    main()
