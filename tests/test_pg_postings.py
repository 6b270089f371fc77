"""The postings table behind BM25 in PostgreSQL (`index.pg_lexical`), against a real server.

The postings must stay exactly what the chunks' tsvectors hold through every write (upsert,
replace, delete, clear), an index made before them must get them on first open (once, even
with several processes opening it at once), and search must return FTS5's hits, scores and
tie order on many questions, with and without filters.
"""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text

from articleqa.index.database import Database
from articleqa.index.lexical import LexicalIndex, LexicalRow
from articleqa.index.pg_lexical import CHUNKS, POSTINGS, PostgresLexicalIndex
from tests.conftest import corpus_rows

pytestmark = pytest.mark.integration  # a PostgreSQL server on 127.0.0.1

DATA = Path(__file__).parent / "data"
EXPECTED_POSTINGS = (
    f"SELECT u.lexeme, c.seq, cardinality(u.positions), c.n_tokens FROM {CHUNKS} AS c, unnest(c.tsv) AS u"
)
STORED_POSTINGS = f"SELECT lexeme, seq, tf, n_tokens FROM {POSTINGS}"


def postings_match_chunks(database: Database) -> bool:
    """The postings table holds exactly one row per (term, chunk) of the chunks' tsvectors."""
    stored = database.read(lambda db: sorted(db.execute(text(STORED_POSTINGS)).all()))
    expected = database.read(lambda db: sorted(db.execute(text(EXPECTED_POSTINGS)).all()))
    return stored == expected


def chunk_rows(articles: list[dict], per_chunk: int = 3) -> list[LexicalRow]:
    """Each article's paragraphs, `per_chunk` at a time, as chunk rows with its source and date."""
    rows = []
    for article in articles:
        paragraphs = [p for p in article["body"].split("\n") if p.strip()]
        published = (
            date.fromisoformat(article["published_at"][:10]).toordinal() if article.get("published_at") else None
        )
        for n, at in enumerate(range(0, len(paragraphs), per_chunk)):
            body = "\n".join(paragraphs[at : at + per_chunk])
            rows.append(
                LexicalRow(f"{article['id']}:{n}", article["id"], article.get("source"), published, 0, len(body), body)
            )
    return rows


def test_postings_follow_every_write(database_url):
    database = Database(database_url, "test")
    lexical = PostgresLexicalIndex(database)
    try:
        rows = chunk_rows(corpus_rows(20))
        lexical.upsert(rows)
        assert postings_match_chunks(database)
        count = database.read(lambda db: db.execute(text(f"SELECT count(*) FROM {POSTINGS}")).scalar())
        assert count > 10 * len(rows)
        # Replaced (new text, new seq), repeated words, a number; then deleted; then all cleared.
        lexical.upsert(
            [LexicalRow(rows[0].chunk_id, rows[0].article_id, None, None, 0, 9, "Ferry ferry 30,000 ferry.")]
        )
        assert postings_match_chunks(database)
        tf = database.read(lambda db: db.execute(text(f"SELECT tf FROM {POSTINGS} WHERE lexeme = 'ferri'")).all())
        assert tf == [(3,)]
        lexical.delete([r.chunk_id for r in rows[:5]] + ["missing"])
        assert postings_match_chunks(database)
        assert not database.read(lambda db: db.execute(text(f"SELECT 1 FROM {POSTINGS} WHERE lexeme = 'ferri'")).all())
        lexical.clear()
        assert database.read(lambda db: db.execute(text(f"SELECT count(*) FROM {POSTINGS}")).scalar()) == 0
        lexical.upsert(rows[:3])
        assert postings_match_chunks(database)
    finally:
        database.dispose()


def test_an_index_made_before_the_postings_gets_them_on_first_open(database_url):
    """An index written by the code before the postings (no postings table, no `seq` index) is
    upgraded when opened, once, however many processes open it at the same moment, and
    searches as before."""
    database = Database(database_url, "test")
    try:
        lexical = PostgresLexicalIndex(database)
        lexical.upsert(chunk_rows(corpus_rows(30)))
        question = "How many people died when the apartment building in Magnitogorsk collapsed?"
        before = lexical.search(question, 10)
        with database.begin() as db:  # what the earlier code made: neither of these
            db.execute(text(f"DROP TABLE {POSTINGS}"))
            db.execute(text(f"DROP INDEX {CHUNKS}_seq"))
        opened, failed = [], []

        def open_it() -> None:
            other = Database(database_url, "test")
            try:
                opened.append(PostgresLexicalIndex(other).search(question, 10))
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                failed.append(exc)
            finally:
                other.dispose()

        threads = [threading.Thread(target=open_it) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failed == [] and opened == [before] * 3
        assert postings_match_chunks(database)
        assert database.read(lambda db: db.execute(text(f"SELECT to_regclass('{CHUNKS}_seq')")).scalar())
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def both(postgres, tmp_path_factory):
    """The same chunks (Wikinews, MultiHop-RAG articles, and exact duplicates of some, for ties)
    written in the same order to SQLite's FTS5 and to PostgreSQL, some replaced and deleted."""
    articles = corpus_rows() + [
        json.loads(line) for line in (DATA / "multihop-rag" / "articles.jsonl").read_text().splitlines()[:150]
    ]
    rows = chunk_rows(articles)
    duplicates = [LexicalRow(f"dup-{i}", f"dup-{i}", "Copies", None, 0, 1, r.text) for i, r in enumerate(rows[::40])]
    database = Database(postgres.create_database("postings_vs_fts5"), "test")
    sqlite = LexicalIndex(tmp_path_factory.mktemp("fts5") / "lexical.sqlite")
    pg = PostgresLexicalIndex(database)
    for index in (sqlite, pg):
        for at in range(0, len(rows), 500):
            index.upsert(rows[at : at + 500])
        index.upsert(duplicates)
        index.upsert([rows[7], duplicates[0]])  # replaced: written again, last
        index.delete([r.chunk_id for r in rows[100:130]])
    yield sqlite, pg, sorted({r.article_id for r in rows})
    sqlite.close()
    database.dispose()


def searches(article_ids: list[str]) -> list[tuple[str, dict]]:
    """Every question of eval.jsonl and 100 MultiHop-RAG ones, some again with each filter, and a
    few made for the edge cases (phrases of several words, repeated and unknown terms)."""
    asked = [json.loads(line)["question"] for line in (DATA / "eval.jsonl").read_text().splitlines() if line.strip()]
    report = (DATA / "multihop-rag" / "questions-report.jsonl").read_text().splitlines()
    asked += [json.loads(line)["question"] for line in report[:100]]
    asked += [
        "30,000 peacekeepers",
        "U.S. U.S. president president said",
        "Bankman-Fried trial",
        "zzqxw unknownterm",
        "said",
    ]
    out: list[tuple[str, dict]] = [(q, {}) for q in asked]
    for i, q in enumerate(asked[::6]):
        out.append((q, {"sources": ["Wikinews", "Copies"]}))
        out.append((q, {"published_from": 737060 + 10 * i, "published_to": 737400 + 10 * i}))
        out.append((q, {"article_ids": article_ids[i::9]}))
    return out


def test_search_equals_fts5_on_many_questions(both):
    sqlite, pg, article_ids = both
    assert pg.count() == sqlite.count() and pg.chunk_ids() == sqlite.chunk_ids()
    done = 0
    for question, filters in searches(article_ids):
        for k in (30, 5):
            expected, found = sqlite.search(question, k, **filters), pg.search(question, k, **filters)
            assert [h.chunk_id for h in found] == [h.chunk_id for h in expected], (question, filters, k)
            assert [h.score for h in found] == pytest.approx([h.score for h in expected], rel=1e-9), question
            done += bool(expected)
    assert done > 500


def test_the_chunks_a_filter_allows_are_the_same_in_both(both):
    """`chunk_ids_where` (what a filtered dense search is restricted to) agrees between the two
    lexical indexes for every filter the searches above use, and contains every chunk those
    filtered searches return."""
    sqlite, pg, article_ids = both
    filters = [f for _q, f in searches(article_ids) if f]
    assert len(filters) > 30
    for f in filters:
        allowed = sqlite.chunk_ids_where(**f)
        assert sorted(pg.chunk_ids_where(**f)) == sorted(allowed), f
        assert {h.chunk_id for h in sqlite.search("the said", 500, **f)} <= set(allowed)
    assert sorted(pg.chunk_ids_where()) == sorted(sqlite.chunk_ids_where()) == sorted(sqlite.chunk_ids())
    assert pg.chunk_ids_where(sources=["Nobody"]) == []
