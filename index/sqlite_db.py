"""One SQLite file, one connection per thread: WAL, a busy timeout, closed together.

A `sqlite3.Connection` must not be used by two threads at once, and the web app answers
several questions at the same time while another process may be indexing into the same
file. So every thread gets its own connection (created on first use), all in WAL mode (readers
never block the writer, and read committed data only) with a busy timeout (a writer waits for
another writer instead of failing with "database is locked").
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_S = 30.0


class SQLiteDB:
    """Per-thread connections to the SQLite file `path`; `schema` runs once, on open.

    Args:
        path: The database file (created when missing).
        schema: SQL script run when the first connection opens (CREATE ... IF NOT EXISTS).
        busy_timeout: Seconds a statement waits for another connection's write lock.
    """

    def __init__(self, path: str | Path, schema: str = "", *, busy_timeout: float = BUSY_TIMEOUT_S):
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        conn = self.conn
        conn.execute("PRAGMA journal_mode=WAL")  # persistent: recorded in the file
        if schema:
            conn.executescript(schema)

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise sqlite3.ProgrammingError(f"{self.path} is closed")
            # check_same_thread=False only so that close() may close it from another thread;
            # it is used by the thread that opened it alone.
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, check_same_thread=False)
            conn.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; a power cut may lose the last commit only
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def execute(self, sql: str, params: tuple | list = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection inside one transaction (committed, or rolled back on error)."""
        conn = self.conn
        with conn:
            yield conn

    def close(self) -> None:
        """Close every thread's connection; using the file afterwards is an error."""
        with self._lock:
            self._closed = True
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()
