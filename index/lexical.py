"""BM25 over the same chunks as Chroma, with SQLite FTS5.

News questions hinge on names and numbers ("Lavrov", "30,000") that a small embedding model
blurs; a lexical index carries them. FTS5 ships with Python's sqlite3, persists in the index
folder beside Chroma, and ranks with BM25 (`bm25()`), so there is no index to rebuild in
memory at start-up.

The chunk rows live in a plain table (keyed by chunk id, with the filter columns) and FTS5
indexes its text as an external-content table kept in step by triggers. A side table holds
each chunk's sentence vectors for the answerer (`index.encoding.SpanVectors`); a trigger
deletes them with their chunk, so they can never outlive or mismatch it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from articleqa.index.encoding import SpanVectors
from articleqa.index.sqlite_db import SQLiteDB
from articleqa.index.sqlite_rows import rows_in
from articleqa.index.text import query_terms

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY,
    chunk_id TEXT NOT NULL UNIQUE,
    article_id TEXT NOT NULL,
    source TEXT,
    published_ord INTEGER,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_article ON chunks(article_id);
-- for filtered searches, which list the allowed rows first (`LexicalIndex.search`)
CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source);
CREATE INDEX IF NOT EXISTS chunks_published ON chunks(published_ord);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, content='chunks', content_rowid='rowid',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vocab USING fts5vocab(chunks_fts, 'row');
CREATE TABLE IF NOT EXISTS sentence_vectors (
    chunk_id TEXT PRIMARY KEY,
    spans BLOB NOT NULL,
    vectors BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS chunks_ad_vectors AFTER DELETE ON chunks BEGIN
    DELETE FROM sentence_vectors WHERE chunk_id = old.chunk_id;
END;
"""


@dataclass(frozen=True)
class LexicalRow:
    chunk_id: str
    article_id: str
    source: str | None
    published_ord: int | None
    start: int
    end: int
    text: str
    # The chunk's sentence vectors, if the embedding model gives them (written, never read back
    # with the row: see `LexicalIndex.sentence_vectors`).
    sentences: SpanVectors | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class LexicalHit:
    chunk_id: str
    score: float  # BM25, higher is better


class LexicalIndex:
    """The FTS5 chunk index in `path` (created on first use)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = SQLiteDB(self.path, _SCHEMA)

    def close(self) -> None:
        self._db.close()

    def upsert(self, rows: Iterable[LexicalRow]) -> None:
        """Insert or replace rows by chunk id, atomically."""
        rows = list(rows)
        with self._db.transaction() as db:
            db.executemany("DELETE FROM chunks WHERE chunk_id = ?", [(r.chunk_id,) for r in rows])
            db.executemany(
                'INSERT INTO chunks (chunk_id, article_id, source, published_ord, start, "end", '
                "text) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(r.chunk_id, r.article_id, r.source, r.published_ord, r.start, r.end, r.text) for r in rows],
            )
            db.executemany(
                "INSERT OR REPLACE INTO sentence_vectors (chunk_id, spans, vectors) VALUES (?, ?, ?)",
                [(r.chunk_id, *r.sentences.to_blobs()) for r in rows if r.sentences is not None],
            )

    def delete(self, chunk_ids: Sequence[str]) -> None:
        with self._db.transaction() as db:
            db.executemany("DELETE FROM chunks WHERE chunk_id = ?", [(cid,) for cid in chunk_ids])

    def clear(self) -> None:
        with self._db.transaction() as db:
            db.execute("DELETE FROM chunks")
            db.execute("DELETE FROM sentence_vectors")

    def sentence_vectors(self, chunk_ids: Sequence[str]) -> dict[str, SpanVectors]:
        """The stored sentence vectors of these chunks (chunks without any are left out)."""
        query = "SELECT chunk_id, spans, vectors FROM sentence_vectors WHERE chunk_id IN ({marks})"
        return {
            chunk_id: SpanVectors.from_blobs(spans, vectors)
            for chunk_id, spans, vectors in rows_in(self._db.conn, query, chunk_ids)
        }

    def document_frequencies(self, terms: Sequence[str]) -> tuple[dict[str, int], int]:
        """How many chunks contain each term (as FTS5's porter tokenizer stems it), and how many
        chunks there are: corpus statistics for weighting a question's terms."""
        terms = list(dict.fromkeys(terms))
        counts = (
            dict(rows_in(self._db.conn, "SELECT term, doc FROM chunks_vocab WHERE term IN ({marks})", terms))
            if terms
            else {}
        )
        return counts, self.count()

    def chunk_ids_where(
        self,
        *,
        sources: Sequence[str] | None = None,
        published_from: int | None = None,
        published_to: int | None = None,
        article_ids: Sequence[str] | None = None,
    ) -> list[str]:
        """The ids of the chunks that `search` with these filters may return (the filters as
        there; none given: every chunk), in no particular order."""
        where, params = _filter_sql(sources, published_from, published_to, article_ids)
        sql = "SELECT chunk_id FROM chunks" + (f" WHERE {' AND '.join(where)}" if where else "")
        return [row[0] for row in self._db.execute(sql, params)]

    def chunk_ids_of(self, article_id: str) -> set[str]:
        rows = self._db.execute("SELECT chunk_id FROM chunks WHERE article_id = ?", (article_id,))
        return {row[0] for row in rows}

    def chunk_ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT chunk_id FROM chunks")}

    def article_ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT DISTINCT article_id FROM chunks")}

    def count(self) -> int:
        return self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]

    def get(self, chunk_ids: Sequence[str]) -> dict[str, LexicalRow]:
        """The stored rows for these chunk ids (missing ids are left out)."""
        query = 'SELECT chunk_id, article_id, source, published_ord, start, "end", text FROM chunks WHERE chunk_id IN ({marks})'
        return {row[0]: LexicalRow(*row) for row in rows_in(self._db.conn, query, chunk_ids)}

    def search(
        self,
        query: str,
        k: int = 10,
        *,
        sources: Sequence[str] | None = None,
        published_from: int | None = None,
        published_to: int | None = None,
        article_ids: Sequence[str] | None = None,
    ) -> list[LexicalHit]:
        """BM25 search for any of the query's terms.

        Args:
            query: Free text; stopwords are dropped and the remaining terms OR-ed.
            k: Maximum hits.
            sources: Keep only chunks from these sources.
            published_from, published_to: Inclusive date range as `date.toordinal()`;
                chunks without a date are excluded when either bound is given.
            article_ids: Keep only chunks of these articles.

        Returns:
            Hits, best first.
        """
        terms = query_terms(query)
        if not terms or k <= 0:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        where, params = _filter_sql(sources, published_from, published_to, article_ids)
        # Rank inside FTS5 and join only the k best to their chunk ids (joining every match first
        # read a chunk row per match: 28 against 15 ms a long question over the 609 MultiHop-RAG
        # articles, same hits). bm25() runs only for the matches that get past the filter.
        ranked = (
            "SELECT c.chunk_id, f.rank FROM (SELECT chunks_fts.rowid AS rowid, bm25(chunks_fts) AS rank "
            "FROM chunks_fts {allowed}WHERE chunks_fts MATCH ? ORDER BY rank LIMIT ?) f "
            "JOIN chunks c ON c.rowid = f.rowid ORDER BY f.rank"
        )
        if not where:
            sql = ranked.format(allowed="")
        else:
            # Filtered: list the allowed rows first (from the indexes on the filter columns), and
            # test each match against that list. Joining every match to its chunk row instead
            # took 20 against 10 ms a long question filtered by source over 3,000 articles, same
            # hits. CROSS JOIN keeps FTS5 the outer loop: handed the rowids as constraints, it
            # would run the whole query once per allowed row.
            sql = (
                f"WITH allowed(r) AS MATERIALIZED (SELECT rowid FROM chunks WHERE {' AND '.join(where)}) "
                + ranked.format(allowed="CROSS JOIN allowed ON allowed.r = chunks_fts.rowid ")
            )
        rows = self._db.execute(sql, [*params, match, k]).fetchall()
        # FTS5's bm25() is negated so that ORDER BY ascending puts the best first.
        return [LexicalHit(chunk_id, -rank) for chunk_id, rank in rows]


def _filter_sql(
    sources: Sequence[str] | None,
    published_from: int | None,
    published_to: int | None,
    article_ids: Sequence[str] | None,
) -> tuple[list[str], list[object]]:
    """The conditions on the `chunks` table (to AND together) and their parameters."""
    where: list[str] = []
    params: list[object] = []
    if sources:
        where.append(f"source IN ({','.join('?' * len(sources))})")
        params.extend(sources)
    if article_ids:
        where.append(f"article_id IN ({','.join('?' * len(article_ids))})")
        params.extend(article_ids)
    if published_from is not None:
        where.append("published_ord >= ?")
        params.append(published_from)
    if published_to is not None:
        where.append("published_ord <= ?")
        params.append(published_to)
    return where, params
