"""`SELECT ... WHERE key IN (...)` for any number of keys, within SQLite's variable limit."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

# SQLite's default limit on variables in one statement is 999 on older builds.
BATCH = 500


def rows_in(db: sqlite3.Connection, query: str, keys: Sequence[str]) -> Iterator[tuple]:
    """The rows of `query` for the distinct `keys`, in batches.

    `query` has one `{marks}` placeholder where the IN list goes, e.g.
    "SELECT id, text FROM articles WHERE id IN ({marks})".
    """
    unique = list(dict.fromkeys(keys))
    for i in range(0, len(unique), BATCH):
        batch = unique[i : i + BATCH]
        yield from db.execute(query.format(marks=",".join("?" * len(batch))), batch)
