"""The benchmarks' helpers: the scaling benchmark's synthetic corpus (fixed, well-formed, readable by
the loaders) and the baseline recipe's chunk count."""

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


def test_the_baseline_recipe_counts_its_chunks(tmp_path):
    """`BaselineRecipe.chunk_count()`: what `bench/run_all.py` reports as the recipe's chunks
    (a fake embedding: the count does not depend on the model)."""
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from articleqa.index import Article
    from articleqa.qa.baseline import BaselineRecipe

    articles = [
        Article(id=f"a{i}", title=f"Article {i}", text="A sentence about the news. " * 100 * i, origin="test")
        for i in (1, 2)
    ]
    splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)  # the recipe's
    expected = sum(len(splitter.split_text(a.text)) for a in articles)
    assert expected > len(articles)
    recipe = BaselineRecipe(DeterministicFakeEmbedding(size=8), persist_dir=tmp_path / "recipe")
    try:
        assert recipe.chunk_count() == 0
        recipe.index(articles)
        assert recipe.chunk_count() == expected
    finally:
        recipe.close()


def test_the_server_mode_table_has_a_row_per_size_and_mode():
    from bench.server_mode import markdown

    numbers = {
        "articles_per_s": 25.0,
        "p50_ms": 60.0,
        "p95_ms": 120.0,
        "long_p50_ms": 80.0,
        "long_p95_ms": 150.0,
        "answer_accuracy": 0.6,
    }
    results = {
        "rows": [
            {"articles": size, "embedded": numbers, "server": {**numbers, "articles_per_s": 20.0}}
            for size in (3000, 10000)
        ]
    }
    rows = markdown(results).splitlines()[2:]
    assert [r.split("|")[1:3] for r in rows] == [
        [" 3,000 ", " embedded "],
        [" 3,000 ", " server "],
        [" 10,000 ", " embedded "],
        [" 10,000 ", " server "],
    ]
    assert "| 20.0 |" in rows[1] and "| 25.0 |" in rows[0]


def test_a_server_mode_run_of_one_size_keeps_the_other_sizes_rows():
    from bench.server_mode import merged

    old = {"date": "2026-11-27", "rows": [{"articles": 3000, "embedded": {"p50_ms": 1}}]}
    new = {"date": "2026-11-28", "sizes": [10000], "rows": [{"articles": 10000, "date": "2026-11-28"}]}
    result = merged(old, new)
    assert [r["articles"] for r in result["rows"]] == [3000, 10000]
    assert result["rows"][0] == {"date": "2026-11-27", "articles": 3000, "embedded": {"p50_ms": 1}}
    again = merged(result, {"date": "2026-11-29", "rows": [{"articles": 3000, "date": "2026-11-29"}]})
    assert [r["date"] for r in again["rows"]] == ["2026-11-29", "2026-11-28"]
    assert merged(None, new) is new
