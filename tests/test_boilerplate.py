"""A site's repeated lines are left out of chunks; the article text and every offset stay exact."""

from __future__ import annotations

import pytest

from articleqa.index import index_paths
from articleqa.index.boilerplate import boilerplate_spans, site_of
from articleqa.index.chunking import chunk_article
from articleqa.index.models import Article
from tests.conftest import write_jsonl

PROMPT = "CLICK HERE TO SIGN UP FOR OUR NEWSLETTER"
AD = "Advertisement"


def story(i: int, source: str | None = "Daily Example", url: str | None = None, extra: str = "") -> Article:
    """An article with the site's ad marker first, one between paragraphs and a prompt last."""
    text = (
        f"{AD}\n"
        f"The council of town number {i} voted on the new bridge on Monday.\n"
        f"{AD}\n"
        f"Mayor Ann Example{i} said the vote was close and the bridge will open in spring.\n"
        f"Residents of town {i} had asked for the bridge for a decade.{extra}\n"
        f"{PROMPT}"
    )
    return Article(id=f"a{i}", title=f"Bridge {i}", text=text, source=source, url=url, origin=f"mem:{i}")


def lines_of(article: Article, spans) -> set[str]:
    return {article.text[s:e] for s, e in spans}


def test_lines_repeated_across_a_sites_articles_are_found():
    articles = [story(i) for i in range(4)]
    spans = boilerplate_spans(articles)
    assert set(spans) == {a.id for a in articles}
    for article in articles:
        assert lines_of(article, spans[article.id]) == {AD, PROMPT}


def test_two_articles_are_not_enough_and_sites_do_not_mix():
    assert boilerplate_spans([story(0), story(1)]) == {}
    mixed = [story(0, source="A"), story(1, source="B"), story(2, source="C")]
    assert boilerplate_spans(mixed) == {}
    # An article with neither source nor URL has no site and is left alone.
    assert boilerplate_spans([story(i, source=None) for i in range(5)]) == {}


def test_the_site_is_the_source_else_the_urls_host():
    assert site_of(story(0, source=" Daily Example ")) == "daily example"
    assert site_of(story(0, source=None, url="https://www.example.org/news/1")) == "example.org"
    by_host = [story(i, source=None, url=f"https://www.example.org/news/{i}") for i in range(3)]
    assert set(boilerplate_spans(by_host)) == {"a0", "a1", "a2"}


def test_a_line_in_few_of_many_articles_is_kept():
    """A sentence a site repeats in 3 of 20 articles (under a fifth) is reporting, not boilerplate."""
    shared = "\nThe bridge was first proposed in 1998."
    articles = [story(i, extra=shared if i < 3 else "") for i in range(20)]
    found = boilerplate_spans(articles)
    assert all(shared.strip() not in lines_of(a, found[a.id]) for a in articles)
    assert all(lines_of(a, found[a.id]) == {AD, PROMPT} for a in articles)


def test_no_chunk_begins_ends_or_consists_of_a_skipped_line_and_chunks_stay_exact():
    article = story(7)
    spans = boilerplate_spans([article, story(8), story(9)])[article.id]
    for size, overlap in [(800, 150), (60, 0), (150, 100)]:
        chunks = chunk_article(article, size, overlap, skip=spans)
        assert chunks
        for chunk in chunks:
            assert article.text[chunk.start : chunk.end] == chunk.text
            assert not chunk.text.startswith((AD, PROMPT)) and not chunk.text.endswith((AD, PROMPT))
            assert PROMPT not in chunk.text  # it is the last line: at an edge of any chunk
        joined = " ".join(c.text for c in chunks)
        assert "council of town number 7" in joined and "Mayor Ann Example7 said" in joined
        assert "asked for the bridge" in joined
    # A line between two sentences of one chunk stays inside its slice.
    whole = chunk_article(article, 800, 150, skip=spans)
    assert len(whole) == 1 and f"Monday.\n{AD}\nMayor" in whole[0].text


def test_skipping_everything_is_ignored():
    article = Article(id="x", title="t", text=f"{AD}\n{PROMPT}", origin="mem:x")
    chunks = chunk_article(article, skip=[(0, len(AD)), (len(AD) + 1, len(article.text))])
    assert [c.text for c in chunks] == [article.text]


@pytest.mark.slow
def test_indexing_leaves_a_sites_boilerplate_out_of_the_index(open_store, tmp_path):
    rows = [
        {"id": a.id, "title": a.title, "body": a.text, "source": a.source, "published_at": "2023-11-0" + str(i + 1)}
        for i, a in enumerate(story(i) for i in range(4))
    ]
    store = open_store()
    report = index_paths(store, [write_jsonl(tmp_path / "site.jsonl", rows)])
    assert len(report.added) == 4 and not report.failed
    chunk_ids = store.lexical.chunk_ids()
    chunks = store.lexical.get(sorted(chunk_ids))
    assert chunks
    for row in rows:
        stored = store.articles.get(row["id"])
        assert stored.text == row["body"], "the article text is stored unchanged"
    for chunk in chunks.values():
        article = store.articles.get(chunk.article_id)
        assert article.text[chunk.start : chunk.end] == chunk.text
        assert PROMPT not in chunk.text and not chunk.text.startswith(AD)
    assert not store.lexical.search("newsletter", k=5), "no chunk holds the newsletter prompt"
    assert store.lexical.search("Example2", k=5), "the reporting around it is indexed"


@pytest.mark.slow
def test_a_new_article_is_judged_with_the_unchanged_ones_the_run_read(open_store, tmp_path):
    """The run that adds one article of a site also reads the site's unchanged articles: its
    boilerplate is found among them although it is the only article chunked (and a re-run after
    a kill, reading the same inputs, chunks the same way)."""

    def row(i: int) -> dict:
        a = story(i)
        return {"id": a.id, "title": a.title, "body": a.text, "source": a.source}

    store = open_store()
    index_paths(store, [write_jsonl(tmp_path / "first.jsonl", [row(i) for i in range(3)])])
    report = index_paths(store, [write_jsonl(tmp_path / "all.jsonl", [row(i) for i in range(4)])])
    assert report.added == ["a3"] and len(report.unchanged) == 3
    new_chunks = [c for c in store.lexical.get(sorted(store.lexical.chunk_ids())).values() if c.article_id == "a3"]
    assert new_chunks and all(PROMPT not in c.text for c in new_chunks)
