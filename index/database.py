"""An index kept in a database server instead of the index folder's SQLite files.

With a database URL (`ARTICLEQA_DATABASE_URL`, `--database-url`), the article store
(`index.pg_articles`), the lexical index with the sentence vectors (`index.pg_lexical`), the
record manager (LangChain's `SQLRecordManager`) and the manifest live in one database, and
what the index folder did for the processes sharing it, the database does for every machine:

    articleqa_meta     the manifest (JSON) and the change token ("version")
    write lock         a PostgreSQL advisory lock, held by the one process writing

So with a Chroma server too, indexers and web replicas on different machines share one index
and the index folder holds nothing the system needs. `DatabaseFolder` is the index folder's
interface (`index.folder.IndexFolder`: token, write lock, live data) on top of it.

Only PostgreSQL (psycopg 3 driver) is supported: the lexical index needs its full-text search,
and the write lock its advisory locks.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, OperationalError

from articleqa.index.folder import IndexBusyError, IndexFolder, IndexStoreError

SUPPORTED_DIALECTS = ("postgresql",)
EXAMPLE_URL = "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE"
META_TABLE = "articleqa_meta"
# Seconds between tries for the write lock while another writer holds it.
LOCK_POLL_S = 0.2
# Seconds a new connection may take before the server counts as unreachable.
CONNECT_TIMEOUT_S = 10
# Pooled connections are pinged (one round trip) before they are handed out, and replaced if the
# server does not answer, only for a write transaction or after this many seconds idle: not on
# every checkout (`pool_pre_ping`), which cost a round trip per call, several per question. A
# read on a connection the server dropped within this time (a restart) is run again once on a
# new connection (`Database.read`).
PING_IDLE_S = 10.0
# Connections older than this are closed and replaced when next checked out (servers or proxies
# that drop long-lived sessions).
POOL_RECYCLE_S = 1800

T = TypeVar("T")


class DatabaseUnavailableError(IndexStoreError):
    """The database URL is malformed, names an unsupported database, or cannot be reached."""


def safe_url(url: str | URL) -> str:
    """`url` with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def parse_database_url(url: str) -> URL:
    """`url` as a SQLAlchemy URL of a supported database, the driver defaulting to psycopg 3.

    Raises:
        DatabaseUnavailableError: not a URL, or a database other than PostgreSQL.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUnavailableError(
            f"database URL {safe_url(url)!r} is not a SQLAlchemy URL; expected e.g. {EXAMPLE_URL}"
        ) from None
    dialect = parsed.get_backend_name()
    if dialect not in SUPPORTED_DIALECTS:
        raise DatabaseUnavailableError(
            f"database URL {safe_url(parsed)!r} names a {dialect!r} database; supported: "
            f"{', '.join(SUPPORTED_DIALECTS)} (e.g. {EXAMPLE_URL}). Unset the database URL to keep "
            "the index in SQLite files in the index folder."
        )
    if "+" not in parsed.drivername:  # SQLAlchemy 2.0 would take plain postgresql:// for psycopg2
        return parsed.set(drivername=f"{dialect}+psycopg")
    if parsed.get_driver_name() != "psycopg":
        raise DatabaseUnavailableError(
            f"database URL {safe_url(parsed)!r} names the driver {parsed.get_driver_name()!r}; the one "
            f"installed is psycopg (psycopg 3): use {dialect}+psycopg:// or {dialect}://"
        )
    return parsed


_META_SCHEMA = f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


class Database:
    """One database's engine (a thread-safe connection pool) and the index's shared state in it.

    Args:
        url: A SQLAlchemy URL of a PostgreSQL database (`parse_database_url`).
        namespace: Which index in the database this is (its write lock's key).

    Raises:
        DatabaseUnavailableError: see `parse_database_url`; or the server does not answer.
    """

    def __init__(self, url: str, namespace: str):
        self.url = parse_database_url(url)
        self.namespace = namespace
        self.engine: Engine = create_engine(
            self.url, pool_recycle=POOL_RECYCLE_S, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
        )
        self._pinger = _Pinger(self.engine)
        # Reads run without a transaction (`read`): no BEGIN and COMMIT round trips.
        self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.ensure_schema(_META_SCHEMA, META_TABLE)

    def __repr__(self) -> str:
        return f"Database({safe_url(self.url)!r})"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in one transaction (committed, or rolled back on error); a server that
        cannot be reached is a `DatabaseUnavailableError` naming it. The connection is pinged
        first (a write is not run again after a failure, as a read is)."""
        with self._connect() as connection, connection.begin():
            yield connection

    def _connect(self) -> Connection:
        """A pooled connection, pinged first (replaced when the server dropped it)."""
        try:
            with self._pinger.always():
                return self.engine.connect()
        except OperationalError as exc:
            raise self._unreachable(exc) from None

    def read(self, work: Callable[[Connection], T]) -> T:
        """`work(connection)` on a pooled connection without a transaction (autocommit): each
        statement is one round trip, with no BEGIN and COMMIT around it. For reads only; at
        PostgreSQL's default isolation (read committed) each statement sees the data committed
        when it starts, inside a transaction or not, so reads see what they saw before.

        A connection found dead (the server restarted since it was last used) is replaced and
        `work` run once more; a server that cannot be reached is a `DatabaseUnavailableError`.
        `work` must fetch its results before it returns (the connection goes back to the pool).
        """
        for attempt in (1, 2):
            try:
                connection = self._reader.connect()
            except OperationalError as exc:
                raise self._unreachable(exc) from None
            try:
                with connection:
                    return work(connection)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                if attempt == 2:
                    raise self._unreachable(exc) from None
        raise AssertionError("unreachable")

    def _unreachable(self, exc: Exception) -> DatabaseUnavailableError:
        reason = str(getattr(exc, "orig", exc) or exc).strip().splitlines()[0]
        return DatabaseUnavailableError(
            f"cannot reach the database at {safe_url(self.url)}: {reason}. Check the URL and that the "
            "server runs, or unset the database URL to keep the index in SQLite files in the index folder."
        )

    def ensure_schema(self, ddl: str, last_table: str) -> None:
        """Run CREATE ... IF NOT EXISTS statements (`;`-separated) unless `last_table`, the last
        table they create, exists: the statements run in one transaction, so then they all ran.
        Checking first keeps opening the index (which the web app does after every write) free
        of DDL, whose table locks would wait for writers. Several processes creating the schema
        at the same moment take turns under a transaction-level advisory lock (concurrent
        CREATE TABLE IF NOT EXISTS can fail in PostgreSQL)."""
        exists = text("SELECT to_regclass(:name)")
        if self.read(lambda db: db.execute(exists, {"name": last_table}).scalar()) is not None:
            return
        with self.serialized() as db:
            for statement in (s.strip() for s in ddl.split(";")):
                if statement:
                    db.execute(text(statement))

    @contextmanager
    def serialized(self) -> Iterator[Connection]:
        """A transaction holding the schema lock: creating tables (here, or LangChain's record
        manager's `create_schema` on its own connection) in the block is never concurrent with
        another process doing the same."""
        with self.begin() as db:
            db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key("schema")})
            yield db

    # ---- shared state -------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        query = text(f"SELECT value FROM {META_TABLE} WHERE key = :key")
        return self.read(lambda db: db.execute(query, {"key": key}).scalar())

    def set_meta(self, key: str, value: str) -> None:
        with self.begin() as db:
            db.execute(
                text(
                    f"INSERT INTO {META_TABLE} (key, value) VALUES (:key, :value) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                ),
                {"key": key, "value": value},
            )

    def read_json(self, key: str) -> dict[str, Any] | None:
        value = self.get_meta(key)
        return json.loads(value) if value is not None else None

    def write_json(self, key: str, value: dict[str, Any]) -> None:
        self.set_meta(key, json.dumps(value, sort_keys=True))

    @contextmanager
    def write_lock(self, wait: float | None, on_wait: Callable[[], None] | None, busy: Callable[[], Exception]):
        """Hold this index's advisory lock: one writer at a time, across processes and machines.

        The lock belongs to a connection held for the session, so a writer that is killed (or
        whose machine goes away) releases it when the server sees the connection close.

        Args:
            wait: Seconds to wait for another writer; None waits as long as it takes, 0 fails at once.
            on_wait: Called once when another writer holds the lock and we wait.
            busy: The exception to raise when `wait` runs out.
        """
        key = lock_key(f"write:{self.namespace}")
        with self._connect() as connection:
            try_lock = text("SELECT pg_try_advisory_lock(:key)")
            locked = connection.execute(try_lock, {"key": key}).scalar()
            connection.commit()
            if not locked:
                if wait == 0:
                    raise busy()
                if on_wait is not None:
                    on_wait()
                deadline = None if wait is None else time.monotonic() + wait
                while not locked:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise busy()
                    time.sleep(LOCK_POLL_S)
                    locked = connection.execute(try_lock, {"key": key}).scalar()
                    connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()

    def dispose(self) -> None:
        """Close the pooled connections (the engine opens new ones if used again)."""
        self.engine.dispose()


class _Pinger:
    """Pings a pooled connection at checkout when it has been idle for `PING_IDLE_S` or more, or
    when the checkout is made inside `always()`. One that fails is discarded with the rest of the
    pool (the server most likely restarted) and a new one connected: SQLAlchemy's pessimistic
    disconnect handling (a `DisconnectionError` raised at checkout), without its round trip on
    every checkout."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._local = threading.local()  # checkouts happen in the thread that connects
        event.listen(engine, "checkin", self._checked_in)
        event.listen(engine, "checkout", self._checked_out)

    @contextmanager
    def always(self) -> Iterator[None]:
        """Ping whatever connection is checked out in this block, idle or not."""
        self._local.always = True
        try:
            yield
        finally:
            self._local.always = False

    def _checked_in(self, _dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def _checked_out(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None:  # a new connection: just connected
            return
        if time.monotonic() - idle_since < PING_IDLE_S and not getattr(self._local, "always", False):
            return
        try:
            self.engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure: the connection is not usable
            error = DisconnectionError(f"pooled connection failed its ping: {exc}")
            error.invalidate_pool = True
            raise error from exc


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key for `name` (stable across processes and machines)."""
    return int.from_bytes(hashlib.sha256(f"articleqa:{name}".encode()).digest()[:8], "big", signed=True)


class DatabaseFolder(IndexFolder):
    """`IndexFolder`'s token and write lock, kept in the database so that every machine shares them.

    The index folder itself (`root`) holds at most embedded Chroma's `chroma/` folder when no
    Chroma server is used. There are no generations: `live()` is the folder itself, and a
    rebuild (which needs generations) is refused with an error that says so.
    """

    VERSION_KEY = "version"

    def __init__(self, root: str | Path, database: Database):
        super().__init__(root)
        self.database = database

    def where(self) -> str:
        return safe_url(self.database.url)

    def live(self) -> Path:
        return self.root

    def token(self) -> str:
        return self.database.get_meta(self.VERSION_KEY) or ""

    @contextmanager
    def writing(self, wait: float | None = None, on_wait: Callable[[], None] | None = None) -> Iterator[str]:
        """Hold the database's write lock for a write session (see `IndexFolder.writing`)."""
        with self.database.write_lock(wait, on_wait, self._busy):
            before = self.token()
            self.touch()
            yield before

    def _busy(self) -> IndexBusyError:
        return IndexBusyError(
            f"another process is writing to the index in {self.where()} (indexing or "
            "pruning); try again when it has finished"
        )

    def touch(self, data_dir: Path | None = None) -> None:
        self.database.set_meta(self.VERSION_KEY, uuid.uuid4().hex)

    def new_generation(self) -> Path:
        raise IndexStoreError(
            f"rebuilding an index kept in a database ({safe_url(self.database.url)}) is not supported yet. "
            "To change the embedding model, index into a new, empty database (and a new Chroma "
            "collection); to apply new chunking settings, run `articleqa index` without --rebuild: "
            "articles are re-chunked in place."
        )

    def remove_stale_generations(self) -> list[Path]:
        return []
