"""The lexical index in PostgreSQL: `index.lexical.LexicalIndex`'s interface on its full-text search.

Used instead of the SQLite file when the index lives in a database (`index.database`). Same
rows, same filters, and the same hits with the same scores in the same order as SQLite's FTS5:

- Terms. Each chunk's `tsv` is a tsvector of the terms FTS5 indexes it under, computed by FTS5
  itself (`index.lexemes`) and cast from text, with a GIN index. Not a generated column
  `to_tsvector('english', text)`: PostgreSQL's parser and Snowball English stemmer give other
  terms than FTS5's unicode61 + Porter ("30,000", "technology"), so other chunks would match,
  and the document frequencies the answer scorer looks up by FTS5's terms would count others.
- Query. As in SQLite: the question's `index.text.query_terms`, OR-ed, each the phrase of its
  terms (`"30,000"` is "30" followed by "000"): every chunk holding any of the phrases is scored.
- Ranking: FTS5's BM25 (k1 = 1.2, b = 0.75): the sum over the query's phrases of
  idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average length)), with FTS5's idf
  (log((N - n + 0.5) / (n + 0.5)), 1e-6 when not positive), tf the phrase's occurrences in the
  chunk, the chunk's length in tokens (`n_tokens`), and N, the average and each term's n from
  statistics tables kept in the same transactions as the rows (`articleqa_lexical_stats`, and
  `articleqa_lexemes`, FTS5's vocabulary: chunks per term). Computed in SQL in double
  precision, the phrases' terms added in the order of FTS5's C code, so the scores are the same
  to the last bit; equal scores come in the order the chunks were written, as FTS5 returns them.
  (`ts_rank_cd` itself is no substitute: no inverse document frequency, no saturation; on
  tests/data/eval.jsonl its best normalization put the same chunk first as BM25 for 85 of 108
  questions, and 15 answers changed.)
- Postings. The tf of a one-word phrase (nearly every phrase) comes from `articleqa_postings`:
  one row per term of each chunk, with its count (the term's positions in `tsv`) and the
  chunk's length, written and deleted in the same transactions as the chunk rows, under a
  btree key (term, chunk `seq`) that carries the count and length too. A question's BM25 is
  then one index-only scan per phrase, summed per chunk (`_SCORED`). A phrase of several words
  (numbers like "30,000", "U.S.", hyphenated names) is counted in the tsvectors of the chunks
  holding it (found through the GIN index) by `ts_rank_cd` with weights 1 and normalization 0,
  which is the number of times the phrase occurs (each occurrence a cover of density 1).
- Cost. Two statements a search: the statistics, then the scores. On 3,000 articles (21,772
  chunks; the 308 questions of bench.scaling, 30 hits, 2 shared cores, bench/pg_lexical.py):
  12 ms a search at the median and 25 ms at p95 (FTS5 on the same chunks: 27 and 48 ms),
  against 85 and 191 ms before the postings, when chunks were scored from their tsvectors with
  `ts_rank_cd` in rounds, rarest terms first, that stopped once no unread chunk could enter the
  top k (docs/DEPLOYMENT.md, "What a question costs in server mode"). The postings take about
  2.7 times the chunk table's space (162 MB for 1.8 million postings there, the chunk table
  59 MB). An index made before them gets them on first open (`SCHEMA`, run once under the
  schema lock while writers wait): 6 s for those 21,772 chunks. Index-only scans need the
  table's visibility map, which autovacuum sets after large writes; until then a search also
  reads the table (slower, the same hits).
- Document frequencies: read from `articleqa_lexemes`, as SQLite reads FTS5's vocabulary.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, text

from articleqa.index.database import Database
from articleqa.index.encoding import SpanVectors
from articleqa.index.lexemes import lexemes_of, phrase_query, tsvector_literal
from articleqa.index.lexical import LexicalHit, LexicalRow
from articleqa.index.text import query_terms

CHUNKS = "articleqa_chunks"
VECTORS = "articleqa_sentence_vectors"
STATS = "articleqa_lexical_stats"
LEXEMES = "articleqa_lexemes"
POSTINGS = "articleqa_postings"
# FTS5's bm25() defaults.
BM25_K1 = 1.2
BM25_B = 0.75
# One BM25 term per (phrase, chunk holding it), summed per chunk in the order of the phrases, as
# FTS5's C code adds them, so the scores are the same to the last bit (and exact duplicates tie,
# to come in insertion order, `seq`, as FTS5 returns them by rowid). The phrases are unnested in
# order and, for each (LATERAL: a nested loop, phrase after phrase, whose rows the hash aggregate
# sums in the order they come), either a word's postings (an index-only scan of
# `articleqa_postings_key`) or, for a phrase of several words, the chunks holding it (the GIN
# index) with its number of occurrences, which `ts_rank_cd` with every label weighing 1 and
# normalization 0 counts (each occurrence a cover of density 1). The branch that does not apply
# is skipped whole (a one-time filter on the phrase). Filters keep the chunks whose `seq` passes
# them (an index-only scan of `articleqa_chunks_seq`) before the best k are taken, and only
# those k rows of the chunk table are read.
_SCORED = """
SELECT c.chunk_id, t.score FROM (
    SELECT s.seq, s.score FROM (
        SELECT p.seq, sum(q.idf * ((p.tf * (v.k1 + 1)) / (p.tf + v.k1 * (1 - v.b + v.b * p.n_tokens / v.avgdl))))
            AS score
        FROM unnest(CAST(:words AS text[]), CAST(:phrases AS text[]), CAST(:idfs AS float8[])) AS q(word, phrase, idf)
        CROSS JOIN (SELECT CAST(:k1 AS float8) AS k1, CAST(:b AS float8) AS b, CAST(:avgdl AS float8) AS avgdl) AS v
        CROSS JOIN LATERAL (
            SELECT seq, CAST(tf AS float8) AS tf, n_tokens FROM {postings} WHERE q.phrase IS NULL AND lexeme = q.word
            UNION ALL
            SELECT seq, round(ts_rank_cd('{{1,1,1,1}}', tsv, CAST(q.phrase AS tsquery), 0)), n_tokens FROM {chunks}
            WHERE q.phrase IS NOT NULL AND tsv @@ CAST(q.phrase AS tsquery)
        ) AS p
        GROUP BY p.seq
    ) AS s {allowed}ORDER BY s.score DESC, s.seq LIMIT :k
) AS t JOIN {chunks} AS c ON c.seq = t.seq ORDER BY t.score DESC, t.seq
"""

# Each chunk's postings: one row per term it holds, with the term's count (its positions in the
# tsvector, what `ts_rank_cd` counts) and the chunk's length, for BM25 from the index alone.
_ADD_POSTINGS = (
    f"INSERT INTO {POSTINGS} (lexeme, seq, tf, n_tokens) SELECT u.lexeme, c.seq, cardinality(u.positions), "
    f"c.n_tokens FROM {CHUNKS} AS c, unnest(c.tsv) AS u"
)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {CHUNKS} (
    chunk_id TEXT PRIMARY KEY,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    article_id TEXT NOT NULL,
    source TEXT,
    published_ord INTEGER,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text TEXT NOT NULL,
    tsv TSVECTOR NOT NULL,
    n_tokens INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS {CHUNKS}_article ON {CHUNKS} (article_id);
CREATE INDEX IF NOT EXISTS {CHUNKS}_tsv ON {CHUNKS} USING GIN (tsv);
CREATE TABLE IF NOT EXISTS {VECTORS} (
    chunk_id TEXT PRIMARY KEY REFERENCES {CHUNKS} (chunk_id) ON DELETE CASCADE,
    spans BYTEA NOT NULL,
    vectors BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS {STATS} (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    chunks BIGINT NOT NULL,
    tokens BIGINT NOT NULL
);
INSERT INTO {STATS} (id, chunks, tokens) VALUES (1, 0, 0) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS {LEXEMES} (
    lexeme TEXT PRIMARY KEY,
    chunks INTEGER NOT NULL
);
-- Added later: an index made before gets its postings on first open, from the chunks' tsvectors
-- (the writers wait meanwhile, on the statistics lock, and a process that waited for the schema
-- lock finds them there and adds none), their key built after them (faster than row by row).
-- No semicolons in these comments: the statements are split at them.
SELECT 1 FROM {STATS} WHERE id = 1 FOR UPDATE;
CREATE TABLE IF NOT EXISTS {POSTINGS} (
    lexeme TEXT NOT NULL,
    seq BIGINT NOT NULL,
    tf INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL
);
{_ADD_POSTINGS} WHERE NOT EXISTS (SELECT 1 FROM {POSTINGS});
CREATE UNIQUE INDEX IF NOT EXISTS {POSTINGS}_key ON {POSTINGS} (lexeme, seq) INCLUDE (tf, n_tokens);
CREATE UNIQUE INDEX IF NOT EXISTS {CHUNKS}_seq ON {CHUNKS} (seq) INCLUDE (source, published_ord);
-- Last, as it locks out readers until the end of the transaction. The tsvector stays in the row
-- (compressed only if the row would not fit in a page otherwise), the text goes out of line
-- first: phrases of several words read `tsv` of many rows, the text of a few.
ALTER TABLE {CHUNKS} ALTER COLUMN tsv SET STORAGE MAIN
"""
_ROW_COLUMNS = 'chunk_id, article_id, source, published_ord, start, "end", text'


class PostgresLexicalIndex:
    """The chunk index in `database` (tables created on first use); the interface of `LexicalIndex`."""

    def __init__(self, database: Database):
        self.database = database
        database.ensure_schema(SCHEMA, POSTINGS)

    def close(self) -> None:
        """Nothing of its own to close: the connections are the database's (`Database.dispose`)."""

    def upsert(self, rows: Iterable[LexicalRow]) -> None:
        """Insert or replace rows by chunk id, atomically (their old sentence vectors go with them)."""
        rows = list(rows)
        if not rows:
            return
        terms = lexemes_of([r.text for r in rows])
        with self.database.begin() as db:
            _lock_stats(db)
            _remove(db, [r.chunk_id for r in rows])
            db.execute(
                text(
                    f"INSERT INTO {CHUNKS} ({_ROW_COLUMNS}, tsv, n_tokens) VALUES (:chunk_id, :article_id, "
                    ":source, :published_ord, :start, :end, :text, CAST(:tsv AS tsvector), :n_tokens)"
                ),
                [
                    {
                        "chunk_id": r.chunk_id,
                        "article_id": r.article_id,
                        "source": r.source,
                        "published_ord": r.published_ord,
                        "start": r.start,
                        "end": r.end,
                        "text": r.text,
                        "tsv": tsvector_literal(t),
                        "n_tokens": len(t),
                    }
                    for r, t in zip(rows, terms, strict=True)
                ],
            )
            db.execute(text(f"{_ADD_POSTINGS} WHERE c.chunk_id = ANY(:ids)"), {"ids": [r.chunk_id for r in rows]})
            _add_stats(db, len(rows), sum(map(len, terms)))
            vocabulary = Counter(lexeme for t in terms for lexeme in set(t))
            db.execute(
                text(
                    f"INSERT INTO {LEXEMES} (lexeme, chunks) SELECT * FROM unnest(CAST(:lexemes AS text[]), "
                    "CAST(:counts AS integer[])) ON CONFLICT (lexeme) DO UPDATE SET "
                    f"chunks = {LEXEMES}.chunks + excluded.chunks"
                ),
                {"lexemes": sorted(vocabulary), "counts": [vocabulary[x] for x in sorted(vocabulary)]},
            )
            with_vectors = [r for r in rows if r.sentences is not None]
            if with_vectors:
                db.execute(
                    text(f"INSERT INTO {VECTORS} (chunk_id, spans, vectors) VALUES (:chunk_id, :spans, :vectors)"),
                    [
                        dict(zip(("chunk_id", "spans", "vectors"), (r.chunk_id, *r.sentences.to_blobs())))
                        for r in with_vectors
                    ],
                )

    def delete(self, chunk_ids: Sequence[str]) -> None:
        with self.database.begin() as db:
            _lock_stats(db)
            _remove(db, list(chunk_ids))

    def clear(self) -> None:
        with self.database.begin() as db:
            _lock_stats(db)
            db.execute(text(f"DELETE FROM {VECTORS}"))
            db.execute(text(f"DELETE FROM {CHUNKS}"))
            db.execute(text(f"DELETE FROM {LEXEMES}"))
            db.execute(text(f"DELETE FROM {POSTINGS}"))
            db.execute(text(f"UPDATE {STATS} SET chunks = 0, tokens = 0"))

    def sentence_vectors(self, chunk_ids: Sequence[str]) -> dict[str, SpanVectors]:
        """The stored sentence vectors of these chunks (chunks without any are left out)."""
        rows = self.database.read(
            lambda db: db.execute(
                text(f"SELECT chunk_id, spans, vectors FROM {VECTORS} WHERE chunk_id = ANY(:ids)"),
                {"ids": list(dict.fromkeys(chunk_ids))},
            ).all()
        )
        return {chunk_id: SpanVectors.from_blobs(bytes(spans), bytes(vectors)) for chunk_id, spans, vectors in rows}

    def document_frequencies(self, terms: Sequence[str]) -> tuple[dict[str, int], int]:
        """How many chunks contain each term (a stored term, as FTS5's porter tokenizer stems
        it), and how many chunks there are; terms no chunk holds are left out, as in SQLite.
        One statement."""
        total, _tokens, counts = self.database.read(lambda db: _statistics(db, list(dict.fromkeys(terms)), []))
        return counts, total

    def chunk_ids_where(
        self,
        *,
        sources: Sequence[str] | None = None,
        published_from: int | None = None,
        published_to: int | None = None,
        article_ids: Sequence[str] | None = None,
    ) -> list[str]:
        """The ids of the chunks that `search` with these filters may return (as
        `LexicalIndex.chunk_ids_where`)."""
        filters, params = _filter_sql(sources, published_from, published_to, article_ids)
        where = f" WHERE {' AND '.join(filters)}" if filters else ""
        return self._column(f"SELECT chunk_id FROM {CHUNKS}{where}", params)

    def chunk_ids_of(self, article_id: str) -> set[str]:
        return set(self._column(f"SELECT chunk_id FROM {CHUNKS} WHERE article_id = :a", {"a": article_id}))

    def chunk_ids(self) -> set[str]:
        return set(self._column(f"SELECT chunk_id FROM {CHUNKS}"))

    def article_ids(self) -> set[str]:
        return set(self._column(f"SELECT DISTINCT article_id FROM {CHUNKS}"))

    def count(self) -> int:
        return self._column(f"SELECT chunks FROM {STATS}")[0]

    def _column(self, sql: str, params: dict | None = None) -> list:
        query = text(sql)
        return self.database.read(lambda db: list(db.execute(query, params or {}).scalars()))

    def get(self, chunk_ids: Sequence[str]) -> dict[str, LexicalRow]:
        """The stored rows for these chunk ids (missing ids are left out)."""
        rows = self.database.read(
            lambda db: db.execute(
                text(f"SELECT {_ROW_COLUMNS} FROM {CHUNKS} WHERE chunk_id = ANY(:ids)"),
                {"ids": list(dict.fromkeys(chunk_ids))},
            ).all()
        )
        return {row[0]: LexicalRow(*row) for row in rows}

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
        """BM25 search for any of the query's terms, as `LexicalIndex.search` (same arguments,
        filters, hits and scores; see the module docstring for how)."""
        terms = query_terms(query)
        if not terms or k <= 0:
            return []
        # One phrase per term, repeats kept: FTS5 scores `"run" OR "run"` as two phrases.
        phrases = [tuple(words) for words in lexemes_of(terms) if words]
        if not phrases:
            return []
        filters, params = _filter_sql(sources, published_from, published_to, article_ids)
        # One statement for the statistics, one for the scores: read without a transaction, as
        # each statement sees the committed data at its start either way.
        return self.database.read(lambda db: _search(db, phrases, filters, params, k))


def _filter_sql(
    sources: Sequence[str] | None,
    published_from: int | None,
    published_to: int | None,
    article_ids: Sequence[str] | None,
) -> tuple[list[str], dict[str, Any]]:
    """The conditions on the chunks table (to AND together) and their parameters."""
    filters: list[str] = []
    params: dict[str, Any] = {}
    if sources:
        filters.append("source = ANY(:sources)")
        params["sources"] = list(sources)
    if article_ids:
        filters.append("article_id = ANY(:article_ids)")
        params["article_ids"] = list(article_ids)
    if published_from is not None:
        filters.append("published_ord >= :published_from")
        params["published_from"] = published_from
    if published_to is not None:
        filters.append("published_ord <= :published_to")
        params["published_to"] = published_to
    return filters, params


def _search(
    db: Connection, phrases: list[tuple[str, ...]], filters: list[str], params: dict, k: int
) -> list[LexicalHit]:
    """`PostgresLexicalIndex.search` on `db`, given the query's phrases and the filters' SQL."""
    unique = list(dict.fromkeys(phrases))
    chunks, tokens, counts = _statistics(db, [p[0] for p in unique if len(p) == 1], [p for p in unique if len(p) > 1])
    if not chunks:
        return []
    hits = {p: counts.get(p[0] if len(p) == 1 else p, 0) for p in unique}
    # Phrases no chunk holds add nothing to any score (FTS5 adds 0 for them).
    held = [p for p in phrases if hits[p]]
    if not held:
        return []
    sql = _SCORED.format(
        postings=POSTINGS,
        chunks=CHUNKS,
        allowed=f"WHERE s.seq IN (SELECT seq FROM {CHUNKS} WHERE {' AND '.join(filters)}) " if filters else "",
    )
    values = {
        **params,
        "words": [p[0] if len(p) == 1 else None for p in held],
        "phrases": [phrase_query(p) if len(p) > 1 else None for p in held],
        "idfs": [_idf(chunks, hits[p]) for p in held],
        "k1": BM25_K1,
        "b": BM25_B,
        "avgdl": tokens / chunks,
        "k": k,
    }
    return [LexicalHit(chunk_id, float(score)) for chunk_id, score in db.execute(text(sql), values)]


def _idf(chunks: int, hits: int) -> float:
    """FTS5's bm25() idf: log((N - n + 0.5) / (n + 0.5)), 1e-6 where that is not positive."""
    value = math.log((chunks - hits + 0.5) / (hits + 0.5))
    return value if value > 0 else 1e-6


def _statistics(
    db: Connection, lexemes: list[str], phrases: list[tuple[str, ...]]
) -> tuple[int, int, dict[str | tuple[str, ...], int]]:
    """In one statement: how many chunks there are, their tokens, and the chunks holding each
    of `lexemes` (from the vocabulary; those no chunk holds are left out) and each of `phrases`
    of several words (numbers like "30,000", hyphenated names: counted through the GIN index)."""
    parts = [f"SELECT 0 AS kind, NULL AS lexeme, chunks, tokens FROM {STATS}"]
    params: dict[str, Any] = {}
    if lexemes:
        parts.append(f"SELECT 1, lexeme, chunks, NULL FROM {LEXEMES} WHERE lexeme = ANY(:lexemes) AND chunks > 0")
        params["lexemes"] = lexemes
    for i, phrase in enumerate(phrases):
        parts.append(f"SELECT 2, CAST({i} AS text), count(*), NULL FROM {CHUNKS} WHERE tsv @@ CAST(:p{i} AS tsquery)")
        params[f"p{i}"] = phrase_query(phrase)
    chunks = tokens = 0
    counts: dict[str | tuple[str, ...], int] = {}
    for kind, key, n, total_tokens in db.execute(text(" UNION ALL ".join(parts)), params):
        if kind == 0:
            chunks, tokens = n, total_tokens
        elif kind == 1:
            counts[key] = n
        else:
            counts[phrases[int(key)]] = n
    return chunks, tokens, counts


def _lock_stats(db: Connection) -> None:
    """Lock the statistics row for this transaction: writers of the chunk table take turns, so
    the statistics stay exact (readers are not blocked)."""
    db.execute(text(f"SELECT 1 FROM {STATS} WHERE id = 1 FOR UPDATE"))


def _add_stats(db: Connection, chunks: int, tokens: int) -> None:
    if chunks or tokens:
        db.execute(
            text(f"UPDATE {STATS} SET chunks = chunks + :chunks, tokens = tokens + :tokens"),
            {"chunks": chunks, "tokens": tokens},
        )


def _remove(db: Connection, chunk_ids: list[str]) -> None:
    """Delete these chunks (their sentence vectors cascade) with their postings, and take them
    out of the statistics. Call with the statistics locked."""
    removed = db.execute(
        text(
            f"WITH removed AS (DELETE FROM {CHUNKS} WHERE chunk_id = ANY(:ids) RETURNING seq, tsv, n_tokens), "
            "held AS (SELECT removed.seq, lexeme FROM removed, unnest(tsvector_to_array(removed.tsv)) AS lexeme), "
            f"unposted AS (DELETE FROM {POSTINGS} AS p USING held WHERE p.lexeme = held.lexeme AND p.seq = held.seq), "
            f"gone AS (SELECT lexeme, count(*) AS n FROM held GROUP BY lexeme), updated AS (UPDATE {LEXEMES} AS v "
            "SET chunks = v.chunks - gone.n FROM gone WHERE v.lexeme = gone.lexeme) "
            "SELECT count(*), coalesce(sum(n_tokens), 0) FROM removed"
        ),
        {"ids": chunk_ids},
    ).one()
    _add_stats(db, -removed[0], -removed[1])
