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
