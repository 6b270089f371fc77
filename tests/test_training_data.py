"""The training and reporting data: the MultiHop-RAG split and our own training questions."""

from __future__ import annotations

import json
from pathlib import Path

from training.split_multihop import FIT, REPORT, SOURCE, part_of

ROOT = Path(__file__).resolve().parent.parent


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_split_is_the_hash_split_and_covers_every_question_once():
    fit, report, source = _ids(FIT), _ids(REPORT), _ids(SOURCE)
    assert not set(fit) & set(report)
    assert sorted(fit + report) == sorted(source)
    assert all(part_of(i) == "fit" for i in fit) and all(part_of(i) == "report" for i in report)
    assert 0.4 < len(report) / len(source) < 0.6


def test_multihop_credit_is_kept_beside_the_data():
    note = (SOURCE.parent / "LICENSE-NOTE.txt").read_text(encoding="utf-8")
    assert "MultiHop-RAG" in note and "ODC-BY" in note


OWN = ROOT / "training" / "data"
OWN_FILES = {
    "own-wikinews.jsonl": ROOT / "examples" / "articles" / "wikinews-2019-2020.jsonl",
    "own-wikinews-2.jsonl": ROOT / "examples" / "articles" / "wikinews-2019-2020.jsonl",
    "own-multihop-articles.jsonl": SOURCE.parent / "articles.jsonl",
    "own-multihop-articles-2.jsonl": SOURCE.parent / "articles.jsonl",
    "own-multihop-articles-3.jsonl": SOURCE.parent / "articles.jsonl",
    "own-question-kinds.jsonl": SOURCE.parent / "articles.jsonl",
}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_our_training_questions_quote_their_articles_and_stay_off_the_reporting_sets():
    """Every answerable question's evidence is a verbatim sentence of its article and holds its
    answer; unanswerable ones name no article; no question is about an article of
    tests/data/eval.jsonl (a reporting set); ids are unique across the files."""
    eval_articles = {a for row in _rows(ROOT / "tests" / "data" / "eval.jsonl") for a in row["article_ids"]}
    seen: set[str] = set()
    for name, articles_path in OWN_FILES.items():
        bodies = {row["id"]: row["body"] for row in _rows(articles_path)}
        rows = _rows(OWN / name)
        assert rows, name
        for row in rows:
            assert row["id"] not in seen, row["id"]
            seen.add(row["id"])
            if row["type"] is None:
                assert row["answer"] == "" and row["article_ids"] == [] and row["evidence"] == [], row["id"]
                continue
            assert row["type"] == "factoid" and row["answer"], row["id"]
            assert not set(row["article_ids"]) & eval_articles, row["id"]
            for evidence in row["evidence"]:
                assert any(evidence in bodies[a] for a in row["article_ids"]), row["id"]
            assert any(row["answer"] in evidence for evidence in row["evidence"]), row["id"]
