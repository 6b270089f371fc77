"""The terms SQLite FTS5 indexes a text under, for PostgreSQL's full-text search.

The SQLite lexical index (`index.lexical`) tokenizes with FTS5's `porter unicode61
remove_diacritics 2`. PostgreSQL has no such configuration: its parser splits "30,000", "U.S."
and "Bankman-Fried" its own way, and its `english` dictionary stems with Snowball's English
(Porter2) stemmer, which differs from FTS5's Porter ("technologi"/"technolog"), as PyStemmer's
"porter" also does in places. So the lexemes are not re-implemented: FTS5 itself tokenizes the
texts, in a private in-memory SQLite database, and its `fts5vocab` "instance" table hands back
every term with its position. The PostgreSQL index (`index.pg_lexical`) stores exactly these
terms (as a tsvector cast from text, which PostgreSQL neither re-parses nor re-stems), so the
same chunks match a question in either database and document frequencies count the same chunks.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence

# The tokenizer of index.lexical's chunks_fts, which this must mirror.
TOKENIZE = "porter unicode61 remove_diacritics 2"
# PostgreSQL stores positions up to 16383 (larger ones as 16383) and at most 256 per lexeme.
MAX_POSITION = 16383
MAX_POSITIONS_PER_LEXEME = 256

_local = threading.local()


def _tokenizer() -> sqlite3.Connection:
    """This thread's in-memory FTS5 table (a connection serves one thread at a time)."""
    db = getattr(_local, "db", None)
    if db is None:
        db = sqlite3.connect(":memory:", isolation_level=None)
        db.execute(f"CREATE VIRTUAL TABLE t USING fts5(text, tokenize='{TOKENIZE}')")
        db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance')")
        _local.db = db
    return db


def lexemes_of(texts: Sequence[str]) -> list[list[str]]:
    """Each text's terms in order, as FTS5 indexes them (lower case, no diacritics, stemmed)."""
    if not texts:
        return []
    db = _tokenizer()
    db.execute("BEGIN")
    try:
        db.executemany("INSERT INTO t(rowid, text) VALUES (?, ?)", enumerate(texts, 1))
        found: list[list[str]] = [[] for _ in texts]
        for doc, term, _offset in db.execute("SELECT doc, term, offset FROM v ORDER BY doc, offset"):
            found[doc - 1].append(term)
    finally:
        db.execute("ROLLBACK")  # nothing is kept: the table is empty again
    return found


def _quoted(lexeme: str) -> str:
    """A lexeme in tsvector/tsquery input syntax: single-quoted, quotes and backslashes doubled."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector_literal(terms: Sequence[str]) -> str:
    """A text's terms (`lexemes_of`) with their positions, in PostgreSQL's tsvector input syntax."""
    positions: dict[str, list[int]] = {}
    for i, term in enumerate(terms, 1):
        kept = positions.setdefault(term, [])
        if len(kept) < MAX_POSITIONS_PER_LEXEME and (not kept or kept[-1] < MAX_POSITION):
            kept.append(min(i, MAX_POSITION))
    return " ".join(f"{_quoted(term)}:{','.join(map(str, pos))}" for term, pos in positions.items())


def phrase_query(words: Sequence[str]) -> str:
    """One phrase (a query term's lexemes, in order) in tsquery input syntax, as FTS5 reads a
    quoted term: `"30,000"` is "30" followed by "000"."""
    return " <-> ".join(_quoted(w) for w in words)


def lexeme_query(term: str) -> str:
    """One stored term (e.g. a `qa.text` stem) as a tsquery that matches exactly it."""
    return _quoted(term)
