"""The lexical index in PostgreSQL: `index.lexical.LexicalIndex`'s interface on its full-text search.

Used instead of the SQLite file when the index lives in a database (`index.database`). Same
rows, same filters, and the same hits with the same scores in the same order as SQLite's FTS5:

- Terms. Each chunk's `tsv` is a tsvector of the terms FTS5 indexes it under, computed by FTS5
  itself (`index.lexemes`) and cast from text, with a GIN index. Not a generated column
  `to_tsvector('english', text)`: PostgreSQL's parser and Snowball English stemmer give other
  terms than FTS5's unicode61 + Porter ("30,000", "technology"), so other chunks would match,
  and the document frequencies the answer scorer looks up by FTS5's terms would count others.
- Query. As in SQLite: the question's `index.text.query_terms`, OR-ed, each the phrase of its
  terms (`"30,000"` is "30" followed by "000"), as one tsquery for the GIN index.
- Ranking: FTS5's BM25 (k1 = 1.2, b = 0.75), computed with `ts_rank_cd`. Plain `ts_rank_cd`
  has no inverse document frequency (a rare name weighs as much as a common word) and no
  saturation: on tests/data/eval.jsonl its best normalization (1, divide by 1 + log length)
  put the same chunk first as BM25 for 85 of 108 questions, and 15 answers changed. So it
  serves as what it measures exactly: with normalization 0 (none), weights 1 and one phrase
  per call, `ts_rank_cd` is the number of times the phrase occurs in the chunk (each
  occurrence a cover of density 1). BM25 is then the sum over the query's phrases of
  idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average length)), with FTS5's idf
  (log((N - n + 0.5) / (n + 0.5)), 1e-6 when not positive), the chunk's length in tokens
  (`n_tokens`), and N, the average and each term's n from statistics tables kept in the same
  transactions as the rows (`articleqa_lexical_stats`, and `articleqa_lexemes`, FTS5's
  vocabulary: chunks per term). Equal scores come in the order the chunks were written, as
  FTS5 returns them.
- Cost. Scoring every chunk that holds any term is what FTS5 does, but at `ts_rank_cd`'s speed
  a search took 0.4 s a question on 55,000 chunks (FTS5: 23 ms). So chunks are scored in
  rounds, rarest terms first (`search`): chunks holding none of the terms scored so far can
  only score less than what the remaining terms can add at most (idf * (k1 + 1) each), so
  once that is below the k-th best score found, they cannot enter the top k and are never
  read. The hits are exactly those of scoring every chunk (the same as FTS5's for 864 searches
  of the 108 questions, with and without filters, on 55,000 chunks), in 25 ms a search there.
  Each scored chunk's tsvector is read once, not once per phrase (`_Scorer`), and kept in the
  row rather than in TOAST storage (`SET STORAGE MAIN`): a question of 35 terms took 0.45 s
  before, 0.1 s after, on 11,652 chunks (docs/DEPLOYMENT.md, "What a question costs").
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
# FTS5's bm25() defaults.
BM25_K1 = 1.2
BM25_B = 0.75
# The first round of `search` scores the chunks of the rarest terms up to this many postings.
FIRST_ROUND_POSTINGS = 500
# ts_rank_cd with every label weighing 1 and normalization 0 counts a phrase's occurrences
# (used for phrases of several words; a one-word phrase's count is its number of positions).
_COUNT = "round(ts_rank_cd('{1,1,1,1}', terms, CAST(:q%d AS tsquery), 0))"
# A chunk's tsvector cut down to the query's lexemes (positions kept), read once per chunk: the
# counts are taken from it instead of from `tsv` once per phrase (each read of `tsv` may fetch
# and copy it from TOAST storage).
_TERMS = "ts_filter(setweight(tsv, 'A', CAST(:lexemes AS text[])), '{a}')"

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
-- The tsvector stays in the row (compressed only if the row would not fit in a page otherwise),
-- the text goes out of line first: searches read `tsv` of thousands of rows, the text of a few.
ALTER TABLE {CHUNKS} ALTER COLUMN tsv SET STORAGE MAIN;
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
)
"""
_ROW_COLUMNS = 'chunk_id, article_id, source, published_ord, start, "end", text'


class PostgresLexicalIndex:
    """The chunk index in `database` (tables created on first use); the interface of `LexicalIndex`."""

    def __init__(self, database: Database):
        self.database = database
        database.ensure_schema(SCHEMA, LEXEMES)

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
        filters, params = [], {}
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
        # One statement for the statistics, one per round (usually one or two): read without
        # a transaction, as each statement sees the committed data at its start either way.
        return self.database.read(lambda db: _search(db, phrases, filters, params, k))


def _search(
    db: Connection, phrases: list[tuple[str, ...]], filters: list[str], params: dict, k: int
) -> list[LexicalHit]:
    """`PostgresLexicalIndex.search` on `db`, given the query's phrases and the filters' SQL."""
    unique = list(dict.fromkeys(phrases))
    chunks, tokens, counts = _statistics(db, [p[0] for p in unique if len(p) == 1], [p for p in unique if len(p) > 1])
    if not chunks:
        return []
    hits = {p: counts.get(p[0] if len(p) == 1 else p, 0) for p in unique}
    idf = {p: _idf(chunks, n) for p, n in hits.items()}
    scorer = _Scorer(db, phrases, idf, tokens / chunks, filters, params, k)
    # Rounds, rarest phrases first: a chunk holding none of `scored` scores less than `bound`,
    # the most the other phrases can add; once that is below the k-th score, the top k is
    # final (module docstring: "Cost").
    rarest = sorted((p for p in hits if hits[p]), key=lambda p: hits[p])
    if not rarest:
        return []
    scored, postings = [], 0
    for phrase in rarest:
        if scored and postings + hits[phrase] > FIRST_ROUND_POSTINGS:
            break
        scored.append(phrase)
        postings += hits[phrase]
    while True:
        found = scorer.top(scored)
        rest = [p for p in rarest if p not in scored]
        if not rest:
            return found
        bound = sum((BM25_K1 + 1) * idf[p] * phrases.count(p) for p in rest)
        threshold = found[-1].score if len(found) == k else None
        if threshold is not None and bound * (1 + 1e-9) < threshold:
            return found
        # Add the rarest remaining phrases until the rest could no longer reach the k-th score
        # found (all of them when fewer than k chunks were found).
        while rest and (threshold is None or bound * (1 + 1e-9) >= threshold):
            phrase = rest.pop(0)
            scored.append(phrase)
            bound -= (BM25_K1 + 1) * idf[phrase] * phrases.count(phrase)


class _Scorer:
    """BM25 of the chunks holding any of a set of phrases, over all the query's phrases.

    Each matching chunk's tsvector is read once and cut down to the query's lexemes (`_TERMS`);
    a one-word phrase's count is then its number of positions there (`unnest`, one pass for all
    of them), a longer phrase's the `ts_rank_cd` count (`_COUNT`). Both equal what `ts_rank_cd`
    on the whole tsvector counts (the same positions; checked on every lexeme of every chunk of
    the examples), so the scores are the same to the last bit.
    """

    def __init__(
        self,
        db: Connection,
        phrases: list[tuple[str, ...]],
        idf: dict[tuple[str, ...], float],
        avgdl: float,
        filters: list[str],
        params: dict,
        k: int,
    ):
        self.db = db
        # Term by term in the order of FTS5's C code, in double precision, for the same scores.
        norm = "k1 * (1 - b + b * n_tokens / avgdl)"
        self.score = " + ".join(
            f"CAST(:idf{i} AS float8) * ((tf{i} * (k1 + 1)) / (tf{i} + {norm}))" for i in range(len(phrases))
        )
        single = [i for i, phrase in enumerate(phrases) if len(phrase) == 1]
        self.tfs = ", ".join(
            f"tf{i}" if len(phrase) == 1 else f"{_COUNT % i} AS tf{i}" for i, phrase in enumerate(phrases)
        )
        self.counted = ""
        if single:
            positions = "CAST(coalesce(max(cardinality(positions)) FILTER (WHERE lexeme = :w%d), 0) AS float8) AS tf%d"
            self.counted = (
                " CROSS JOIN LATERAL (SELECT "
                + ", ".join(positions % (i, i) for i in single)
                + " FROM unnest(found.terms)) AS counted"
            )
        self.filters = filters
        self.params = {**params, "k": k, "avgdl": avgdl, "k1": BM25_K1, "b": BM25_B}
        self.params["lexemes"] = sorted({word for phrase in phrases for word in phrase})
        for i, phrase in enumerate(phrases):
            if len(phrase) == 1:
                self.params[f"w{i}"] = phrase[0]
            else:
                self.params[f"q{i}"] = phrase_query(phrase)
            self.params[f"idf{i}"] = idf[phrase]

    def top(self, holding: list[tuple[str, ...]]) -> list[LexicalHit]:
        """The best k chunks (passing the filters) among those holding any of `holding`."""
        where = ["tsv @@ CAST(:any AS tsquery)", *self.filters]
        params = {**self.params, "any": " | ".join(f"({phrase_query(p)})" for p in holding)}
        # Equal scores in insertion order (`seq`), as FTS5 returns them (by rowid). OFFSET 0
        # keeps the planner from inlining the subqueries, which would cut down each tsvector
        # and count each phrase more than once.
        sql = (
            f"SELECT chunk_id, {self.score} AS score FROM (SELECT chunk_id, seq, n_tokens, {self.tfs}, "
            "CAST(:k1 AS float8) AS k1, CAST(:b AS float8) AS b, CAST(:avgdl AS float8) AS avgdl "
            f"FROM (SELECT chunk_id, seq, n_tokens, {_TERMS} AS terms FROM {CHUNKS} WHERE {' AND '.join(where)} "
            f"OFFSET 0) AS found{self.counted} OFFSET 0) AS matched ORDER BY score DESC, seq LIMIT :k"
        )
        return [LexicalHit(chunk_id, float(value)) for chunk_id, value in self.db.execute(text(sql), params)]


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
    """Delete these chunks (their sentence vectors cascade) and take them out of the statistics.
    Call with the statistics locked."""
    removed = db.execute(
        text(
            f"WITH removed AS (DELETE FROM {CHUNKS} WHERE chunk_id = ANY(:ids) RETURNING tsv, n_tokens), "
            "gone AS (SELECT lexeme, count(*) AS n FROM removed, unnest(tsvector_to_array(removed.tsv)) AS lexeme "
            f"GROUP BY lexeme), updated AS (UPDATE {LEXEMES} AS v SET chunks = v.chunks - gone.n FROM gone "
            "WHERE v.lexeme = gone.lexeme) SELECT count(*), coalesce(sum(n_tokens), 0) FROM removed"
        ),
        {"ids": chunk_ids},
    ).one()
    _add_stats(db, -removed[0], -removed[1])
