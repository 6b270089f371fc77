"""The scaling benchmark's synthetic corpus: fixed, well-formed, and readable by the loaders."""

from __future__ import annotations

import json

from articleqa.index import load_articles
from bench.scaling import distractors


def test_distractors_are_fixed_and_load_as_articles(tmp_path):
    made = distractors(25)
    assert made == distractors(25)  # same seed, same corpus: runs are comparable
    assert len({row["id"] for row in made}) == 25
    assert made != distractors(25, seed=1)
    feed = tmp_path / "distractors.jsonl"
    feed.write_text("".join(json.dumps(row) + "\n" for row in made), encoding="utf-8")
    loaded = load_articles([feed])
    assert not loaded.failures
    assert [a.id for a in loaded.articles] == [row["id"] for row in made]
    assert all(a.source == "synthetic" and a.published_at and len(a.text) > 200 for a in loaded.articles)
