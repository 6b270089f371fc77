"""Train the span ranker shipped in `qa/weights/span_ranker.json` (`qa/span_ranker.py`).

Data: the answerable fitting questions of `training.collect.TRAINING_SETS` whose gold answer is
a short answer (not "Yes"/"No"): the MultiHop-RAG fitting part (Yixuan Tang and Yi Yang, COLM
2024, ODC-BY 1.0; LICENSE-NOTE.txt beside the data) and our own questions over the MultiHop-RAG
and Wikinews articles (training/data/README.md). The MultiHop-RAG reporting part, the held-out
`own-*-2.jsonl` files and tests/data/eval.jsonl are never read here.

What it does, on CPU in a few minutes:

0. fits the ranker's answer-type model (`SpanRanker.kinds`: which kind of span a "what"/"which"
   question wants) on the kinds of the gold answers of every answerable fitting question
   ("Yes"/"No" is "other") and of `training.collect.ANSWER_TYPE_QUESTIONS`, our questions of
   every kind, from the question's opening (`train_answer_scorer.fit_type_regression`: C by
   out-of-fold log loss);
1. retrieves passages for every such question as `articleqa ask` does (the indexes of
   `train_answer_scorer`, in `--index-dir`, built if missing);
2. in every retrieved sentence that contains the gold answer, lists `qa.spans.candidates` for
   the question, of the form `qa.spans.span_form` gives as the answerer does ("On what date"
   lists dates; the kind from the question's out-of-fold probabilities of step 0), and labels
   each right when it is the gold answer (`qa.evaluation.short_answer_matches`, the same test
   `articleqa eval` reports); a sentence counts when at least one of its candidates is right;
3. encodes each such sentence once with its spans (`encode_with_spans`) and makes the rows of
   `qa.span_ranker.span_inputs`;
4. picks C of a logistic regression by 5-fold cross-validation grouped by question (the share
   of sentences whose best-rated candidate is right, against the extractor's first candidate;
   the smallest C within one standard error of the best), fits it on all rows and writes the
   weights with the kind model and what produced them.

    python -m training.train_span_ranker            # same data: same weights
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.collect import ANSWER_TYPE_QUESTIONS, ROOT, TRAINING_INDEX_DIR, TRAINING_SETS, load, sha256

OUT = ROOT / "qa" / "weights" / "span_ranker.json"
FOLDS = 5
CS = (0.1, 1.0, 10.0)


@dataclass
class SentenceRows:
    """The candidates of one sentence holding a question's gold answer."""

    question_id: str
    inputs: np.ndarray  # (candidates, columns of span_inputs)
    labels: np.ndarray  # (candidates,) 1 where the candidate is the gold answer


def fit_kinds(embeddings, *, only=None, limit: int | None = None, seed: int = 0):
    """Step 0 of the module's docstring. Returns (the model, {question id: out-of-fold
    P(name, count, date, other)}, a record, the SHA-256 of the kinds file)."""
    from articleqa.qa.answer_type import ANSWER_TYPES, answer_type
    from articleqa.qa.features import OPENING_ROW, analyse, question_vectors
    from training.train_answer_scorer import answer_type_only, fit_type_regression, type_record

    def rows(questions):
        kept = [q for q in questions if q.get("type") not in (None, "null") and q.get("answer")]
        vectors = [question_vectors(analyse(q["question"]), embeddings)[OPENING_ROW] for q in kept]
        kinds = [ANSWER_TYPES.index(answer_type(q["answer"])) for q in kept]
        return [q["id"] for q in kept], vectors, kinds

    ids, v, t = [], [], []
    for name, _articles, files in TRAINING_SETS:
        if only and name not in only:
            continue
        for path in files:
            got = rows(load(path)[:limit])
            ids += got[0]
            v += got[1]
            t += got[2]
    hashes: dict[str, str] = {}
    extra_v, extra_answers = answer_type_only(hashes, "opening", ANSWER_TYPE_QUESTIONS)
    t_all = np.array(t, dtype=int)
    extra_all = np.array([ANSWER_TYPES.index(answer_type(a)) for a in extra_answers], dtype=int)
    model, c, loss, oof = fit_type_regression(np.vstack(v), t_all, extra_v, extra_all, seed, reads="opening")
    record = type_record(c, loss, oof, t_all, extra_all)
    print(f"kinds: {record}", file=sys.stderr)
    return model, dict(zip(ids, oof)), record, hashes


def collect_spans(
    index_dir: Path, kinds_of: dict[str, np.ndarray], *, only=None, limit: int | None = None
) -> tuple[list[SentenceRows], dict]:
    """The rows of every fitting question (see the module's docstring) and the SHA-256 of each
    question file read; `kinds_of` (question id: P(name, count, date, other)) types the
    questions for `span_form`."""
    from rich.progress import Progress

    from articleqa.qa.evaluation import YES_NO, contains, normalise, short_answer_matches
    from articleqa.qa.span_ranker import span_inputs, span_vectors
    from articleqa.qa.spans import candidates, span_form
    from training.collect import open_training_index, untrained_reader

    rows: list[SentenceRows] = []
    hashes: dict[str, str] = {}
    for name, articles, files in TRAINING_SETS:
        if only and name not in only:
            continue
        store = open_training_index(index_dir, name, articles)
        qa, scorer = untrained_reader(store)
        catalog = qa.catalog()
        for path in files:
            hashes[str(path.relative_to(ROOT))] = sha256(path)
            questions = [
                q
                for q in load(path)[:limit]
                if q.get("type") not in (None, "null") and q.get("answer") and normalise(q["answer"]) not in YES_NO
            ]
            with Progress(transient=True) as progress:
                task = progress.add_task(f"Spans of {path.name}", total=len(questions))
                for q in questions:
                    question, gold = q["question"], q["answer"]
                    scores = scorer.featurise(question, qa.retrieve(question).passages, catalog)
                    form = span_form(scores.question.form, kinds_of[q["id"]])
                    for cand in scores.candidates:
                        if not contains(cand.text, gold):
                            continue
                        spans = candidates(question, form, cand.text)
                        labels = np.array([short_answer_matches(s.text, gold) for s in spans], dtype=np.int8)
                        if not labels.any():
                            continue
                        vectors = span_vectors(store.embeddings, cand.text, spans)
                        inputs = span_inputs(spans, vectors, cand.text, scores.question_vector, scores.opening_vector)
                        rows.append(SentenceRows(q["id"], inputs, labels))
                    progress.advance(task)
        store.close()
    return rows, hashes


def top1(rows: list[SentenceRows], scores: list[np.ndarray]) -> float:
    """Share of sentences whose best-scored candidate is right (ties: the first)."""
    return float(np.mean([r.labels[int(np.argmax(s))] for r, s in zip(rows, scores)]))


def fit(rows: list[SentenceRows], seed: int = 0):
    """(the model, the record): C chosen by grouped out-of-fold top-1, the smallest within one
    standard error of the best."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    x = np.vstack([r.inputs for r in rows])
    y = np.concatenate([r.labels for r in rows])
    groups = np.concatenate([[r.question_id] * len(r.labels) for r in rows])
    sentence = np.concatenate([[i] * len(r.labels) for i, r in enumerate(rows)])
    by_c: dict[float, float] = {}
    for c in CS:
        oof = np.zeros(len(y))
        for train, test in GroupKFold(FOLDS).split(x, y, groups):
            model = LogisticRegression(C=c, max_iter=5000, random_state=seed).fit(x[train], y[train])
            oof[test] = model.decision_function(x[test])
        by_c[c] = round(top1(rows, [oof[sentence == i] for i in range(len(rows))]), 4)
        print(f"C={c}: out-of-fold top-1 {by_c[c]}", file=sys.stderr)
    # The one-standard-error rule: the smallest C (the most regularised model) whose out-of-fold
    # top-1 is within one standard error of the best one's; differences smaller than that are
    # the sentences' sampling noise.
    top = max(by_c.values())
    standard_error = float(np.sqrt(top * (1 - top) / len(rows)))
    best = min(c for c in CS if by_c[c] >= top - standard_error)
    model = LogisticRegression(C=best, max_iter=5000, random_state=seed).fit(x, y)
    first = round(top1(rows, [-np.arange(len(r.labels)) for r in rows]), 4)
    record = {
        "sentences": len(rows),
        "questions": len(set(groups)),
        "candidates": int(len(y)),
        "sentences_with_several_candidates": sum(len(r.labels) > 1 for r in rows),
        "C": best,
        "C_rule": "the smallest C within one standard error of the best out-of-fold top-1",
        "standard_error": round(standard_error, 4),
        "out_of_fold_top1_by_C": {str(c): v for c, v in by_c.items()},
        "top1_first_candidate": first,
    }
    return model, record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--index-dir",
        type=Path,
        default=TRAINING_INDEX_DIR,
        help="Where the training indexes are kept (one subfolder per article set).",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", action="append", help="Only this article set (multihop-rag, wikinews).")
    parser.add_argument("--limit", type=int, help="At most this many questions per file (a smoke run).")
    args = parser.parse_args(argv)

    import sklearn

    from articleqa.index.embeddings import get_embeddings
    from articleqa.qa.span_ranker import SpanRanker

    started = time.time()
    kinds, kinds_of, kinds_record, kinds_hashes = fit_kinds(
        get_embeddings(), only=args.only, limit=args.limit, seed=args.seed
    )
    rows, hashes = collect_spans(args.index_dir, kinds_of, only=args.only, limit=args.limit)
    hashes.update(kinds_hashes)
    if not rows:
        raise SystemExit("no sentence holds a gold short answer among its candidates: nothing to train on")
    model, record = fit(rows, args.seed)
    ranker = SpanRanker(
        model.coef_[0].astype(np.float32),
        float(model.intercept_[0]),
        {
            "command": "python -m training.train_span_ranker",
            "seed": args.seed,
            "limit": args.limit,
            "data": {
                "questions_sha256": hashes,
                "credit": "MultiHop-RAG (Tang and Yang, COLM 2024), ODC-BY 1.0; Wikinews, CC BY 2.5",
            },
            **record,
            "kind_model": kinds_record,
            "python": platform.python_version(),
            "scikit_learn": sklearn.__version__,
        },
        kinds,
    )
    data = ranker.to_json()
    SpanRanker.from_json(data)  # the shipped file loads with the class the answerer uses
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    minutes = round((time.time() - started) / 60, 1)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, sha256 {sha256(args.out)}) in {minutes} min")


if __name__ == "__main__":
    main()
