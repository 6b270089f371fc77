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
