"""Filtered BM25 search (`index.lexical.LexicalIndex.search`) ranks exactly as the unfiltered
search does, restricted to the chunks the filter allows. The filtered form lists the allowed rows
first and tests FTS5's matches against them; this pins its hits, order and scores."""

from __future__ import annotations

import random

import pytest

from articleqa.index.lexical import LexicalIndex, LexicalRow

WORDS = (
    "ferry harbour council minister election storm vote court trial bank ship crew "
    "museum painting fire police budget report strike union airport flight island"
).split()
VOCABULARY = WORDS + [f"filler{j}" for j in range(1000)]  # so that no query term is everywhere
SOURCES = ("Wire", "Herald", "Gazette", None)


@pytest.fixture(scope="module")
def lexical(tmp_path_factory):
    rng = random.Random(7)
    index = LexicalIndex(tmp_path_factory.mktemp("lexical") / "lexical.sqlite")
    rows = []
    for i in range(400):
        # A length of its own for every chunk: no two can tie on BM25.
        text = " ".join(rng.choice(VOCABULARY) for _ in range(5 + i)) + f" item{i}"
        dated = i % 5 != 0
        rows.append(
            LexicalRow(
                chunk_id=f"c{i:03d}",
                article_id=f"a{i // 4:03d}",
                source=SOURCES[i % len(SOURCES)],
                published_ord=737000 + i if dated else None,
                start=0,
                end=len(text),
                text=text,
            )
        )
    index.upsert(rows)
    yield index, {r.chunk_id: r for r in rows}
    index.close()


def allowed(row: LexicalRow, sources=None, article_ids=None, published_from=None, published_to=None) -> bool:
    if sources and row.source not in sources:
        return False
    if article_ids and row.article_id not in article_ids:
        return False
    if published_from is not None and (row.published_ord is None or row.published_ord < published_from):
        return False
    return published_to is None or (row.published_ord is not None and row.published_ord <= published_to)


FILTERS = [
    {"sources": ["Wire"]},
    {"sources": ["Herald", "Gazette"]},
    {"sources": ["Nobody"]},
    {"article_ids": ["a003", "a050", "a099"]},
    {"published_from": 737100, "published_to": 737180},
    {"published_from": 0},
    {"published_to": 737150},
    {"sources": ["Wire", "Herald"], "published_from": 737150},
    {"sources": ["Gazette"], "article_ids": [f"a{n:03d}" for n in range(40, 100)]},
]


@pytest.mark.parametrize("filters", FILTERS, ids=[",".join(f) for f in FILTERS])
@pytest.mark.parametrize("query", ["ferry council vote", "storm flight island airport crew", "court"])
def test_a_filtered_search_is_the_unfiltered_ranking_restricted(lexical, query, filters):
    index, rows = lexical
    everything = index.search(query, k=len(rows))
    scores = [h.score for h in everything]
    assert len(set(scores)) == len(scores), "no ties, so that the order is defined"
    expected = [(h.chunk_id, h.score) for h in everything if allowed(rows[h.chunk_id], **filters)]
    for k in (1, 5, 30):
        found = [(h.chunk_id, h.score) for h in index.search(query, k=k, **filters)]
        assert found == expected[:k], (query, filters, k)
    if filters == {"sources": ["Nobody"]}:
        assert expected == []
    else:
        assert expected, "the filter leaves some matches, so the comparison means something"
