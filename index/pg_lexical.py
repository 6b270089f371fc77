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
- Document frequencies: read from `articleqa_lexemes`, as SQLite reads FTS5's vocabulary.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

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
# ts_rank_cd with every label weighing 1 and normalization 0 counts a phrase's occurrences.
_COUNT = "round(ts_rank_cd('{1,1,1,1}', tsv, CAST(:q%d AS tsquery), 0))"

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
        with self.database.begin() as db:
            rows = db.execute(
                text(f"SELECT chunk_id, spans, vectors FROM {VECTORS} WHERE chunk_id = ANY(:ids)"),
                {"ids": list(dict.fromkeys(chunk_ids))},
            )
            return {chunk_id: SpanVectors.from_blobs(bytes(spans), bytes(vectors)) for chunk_id, spans, vectors in rows}

    def document_frequencies(self, terms: Sequence[str]) -> tuple[dict[str, int], int]:
        """How many chunks contain each term (a stored term, as FTS5's porter tokenizer stems
        it), and how many chunks there are; terms no chunk holds are left out, as in SQLite."""
        with self.database.begin() as db:
            counts = _vocabulary(db, list(dict.fromkeys(terms)))
            total = db.execute(text(f"SELECT chunks FROM {STATS}")).scalar()
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
        with self.database.begin() as db:
            return list(db.execute(text(sql), params or {}).scalars())

    def get(self, chunk_ids: Sequence[str]) -> dict[str, LexicalRow]:
        """The stored rows for these chunk ids (missing ids are left out)."""
        with self.database.begin() as db:
            rows = db.execute(
                text(f"SELECT {_ROW_COLUMNS} FROM {CHUNKS} WHERE chunk_id = ANY(:ids)"),
                {"ids": list(dict.fromkeys(chunk_ids))},
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
        with self.database.begin() as db:
            chunks, tokens = db.execute(text(f"SELECT chunks, tokens FROM {STATS}")).one()
            if not chunks:
                return []
            hits = _postings(db, list(dict.fromkeys(phrases)))
            idf = {p: _idf(chunks, n) for p, n in hits.items()}
            scorer = _Scorer(db, phrases, idf, tokens / chunks, filters, params, k)
            # Rounds, rarest phrases first: a chunk holding none of `scored` scores less than
            # `bound`, the most the other phrases can add; once that is below the k-th score,
            # the top k is final (module docstring: "Cost").
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
                # Add the rarest remaining phrases until the rest could no longer reach the
                # k-th score found (all of them when fewer than k chunks were found).
                while rest and (threshold is None or bound * (1 + 1e-9) >= threshold):
                    phrase = rest.pop(0)
                    scored.append(phrase)
                    bound -= (BM25_K1 + 1) * idf[phrase] * phrases.count(phrase)


class _Scorer:
    """BM25 of the chunks holding any of a set of phrases, over all the query's phrases."""

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
        self.tfs = ", ".join(f"{_COUNT % i} AS tf{i}" for i in range(len(phrases)))
        self.filters = filters
        self.params = {**params, "k": k, "avgdl": avgdl, "k1": BM25_K1, "b": BM25_B}
        for i, phrase in enumerate(phrases):
            self.params[f"q{i}"] = phrase_query(phrase)
            self.params[f"idf{i}"] = idf[phrase]

    def top(self, holding: list[tuple[str, ...]]) -> list[LexicalHit]:
        """The best k chunks (passing the filters) among those holding any of `holding`."""
        where = ["tsv @@ CAST(:any AS tsquery)", *self.filters]
        params = {**self.params, "any": " | ".join(f"({phrase_query(p)})" for p in holding)}
        # Equal scores in insertion order (`seq`), as FTS5 returns them (by rowid). OFFSET 0
        # keeps the planner from inlining the subquery, which would count each phrase twice.
        sql = (
            f"SELECT chunk_id, {self.score} AS score FROM (SELECT chunk_id, seq, n_tokens, {self.tfs}, "
            "CAST(:k1 AS float8) AS k1, CAST(:b AS float8) AS b, CAST(:avgdl AS float8) AS avgdl "
            f"FROM {CHUNKS} WHERE {' AND '.join(where)} OFFSET 0) AS matched ORDER BY score DESC, seq LIMIT :k"
        )
        return [LexicalHit(chunk_id, float(value)) for chunk_id, value in self.db.execute(text(sql), params)]


def _idf(chunks: int, hits: int) -> float:
    """FTS5's bm25() idf: log((N - n + 0.5) / (n + 0.5)), 1e-6 where that is not positive."""
    value = math.log((chunks - hits + 0.5) / (hits + 0.5))
    return value if value > 0 else 1e-6


def _vocabulary(db: Connection, lexemes: list[str]) -> dict[str, int]:
    """Chunks holding each lexeme, for those some chunk holds."""
    if not lexemes:
        return {}
    rows = db.execute(
        text(f"SELECT lexeme, chunks FROM {LEXEMES} WHERE lexeme = ANY(:lexemes) AND chunks > 0"),
        {"lexemes": lexemes},
    )
    return {lexeme: n for lexeme, n in rows}


def _postings(db: Connection, phrases: list[tuple[str, ...]]) -> dict[tuple[str, ...], int]:
    """Chunks holding each phrase: one-word phrases from the vocabulary, longer ones (numbers
    like "30,000", hyphenated names) counted through the GIN index."""
    counts = _vocabulary(db, [p[0] for p in phrases if len(p) == 1])
    count = text(f"SELECT count(*) FROM {CHUNKS} WHERE tsv @@ CAST(:q AS tsquery)")
    return {
        p: counts.get(p[0], 0) if len(p) == 1 else db.execute(count, {"q": phrase_query(p)}).scalar() for p in phrases
    }


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
