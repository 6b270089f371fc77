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

Generations (for `--rebuild`) are PostgreSQL schemas, as they are folders in an index folder:

    articleqa_meta (in the connection's own schema, "the root"): the change token, the name of
        the live generation's schema ("live"; absent: the data lies in the root schema itself,
        as every index made before generations existed), and one "generation:NAME" row per
        schema a rebuild created, so that only those are ever dropped
    articleqa_gen_YYYYMMDDtHHMMSS_xxxxxx: one complete index (its own articleqa_meta with the
        manifest, the lexical index, the articles, the record manager)

A generation's `Database` connects with `search_path` set to its schema alone, so the modules
that keep data (`pg_lexical`, `pg_articles`, LangChain's record manager) use unqualified table
names and land in it unchanged. A rebuild builds a new schema beside the live one, which keeps
answering, and switches with one transaction (the pointer and the change token together);
every process on every machine reads the pointer when it (re)opens, which it does when the
token changes. The old schema (or the root's tables) is dropped after the switch; a schema left
by a rebuild that failed or was killed is dropped by the next writer. The write lock and the
token stay in the root, shared by all generations.

Only PostgreSQL (psycopg 3 driver) is supported: the lexical index needs its full-text search,
and the write lock its advisory locks.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, OperationalError

from articleqa.index.folder import IndexBusyError, IndexFolder, IndexStoreError

SUPPORTED_DIALECTS = ("postgresql",)
EXAMPLE_URL = "postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE"
META_TABLE = "articleqa_meta"
# Generations are schemas named SCHEMA_PREFIX + a UTC time + 6 random hex digits (`new_generation`).
SCHEMA_PREFIX = "articleqa_gen_"
GENERATION_NAME = re.compile(rf"{SCHEMA_PREFIX}[0-9]{{8}}t[0-9]{{6}}_[0-9a-f]{{6}}")
# A schema name put into SQL unquoted: lower-case letters, digits and "_", at most PostgreSQL's 63 bytes.
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
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
        schema: Work in this schema only (a generation, see the module docstring): every
            connection's `search_path` is set to it, so unqualified tables are its tables. None:
            the connection's own search path (the root).

    Raises:
        DatabaseUnavailableError: see `parse_database_url`; or the server does not answer.
        ValueError: `schema` is not a plain lower-case name.
    """

    def __init__(self, url: str, namespace: str, schema: str | None = None):
        self.url = parse_database_url(url)
        self.namespace = namespace
        self.schema = schema
        self.engine: Engine = create_engine(
            self.url, pool_recycle=POOL_RECYCLE_S, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
        )
        if schema is not None:
            _use_schema(self.engine, schema)
        self._pinger = _Pinger(self.engine)
        # Reads run without a transaction (`read`): no BEGIN and COMMIT round trips.
        self._reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.ensure_schema(_META_SCHEMA, META_TABLE)

    def __repr__(self) -> str:
        schema = f", schema={self.schema!r}" if self.schema else ""
        return f"Database({safe_url(self.url)!r}{schema})"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in one transaction (committed, or rolled back on error); a server that
        cannot be reached is a `DatabaseUnavailableError` naming it. The connection is pinged
        first (a write is not run again after a failure, as a read is); one lost while the
        transaction runs is rolled back by the server and is a `DatabaseUnavailableError` too."""
        try:
            with self._connect() as connection, connection.begin():
                yield connection
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            raise self._unreachable(exc) from None

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
            put_meta(db, key, value)

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


def put_meta(db: Connection, key: str, value: str) -> None:
    """Set `key` in the meta table, in the caller's transaction (several keys change together)."""
    db.execute(
        text(
            f"INSERT INTO {META_TABLE} (key, value) VALUES (:key, :value) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        ),
        {"key": key, "value": value},
    )


def _use_schema(engine: Engine, schema: str) -> None:
    """Set every new connection's `search_path` to `schema` alone, before SQLAlchemy first uses
    it (so its default schema is that one too): a SET rather than the `options` startup
    parameter, which connection poolers such as PgBouncer refuse. `schema` alone, without the
    root's schema after it: a table missing from the generation must be created there, not
    found in the root."""
    if not SCHEMA_NAME.fullmatch(schema):
        raise ValueError(f"schema name {schema!r} is not valid: lower-case letters, digits and _, at most 63")

    def set_search_path(dbapi_connection: Any, _record: Any) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET search_path TO {schema}")
        dbapi_connection.autocommit = autocommit

    event.listen(engine, "connect", set_search_path, insert=True)


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
    """`IndexFolder`'s token, write lock and generations, kept in the database so that every
    machine shares them (see the module docstring).

    Generations are schemas; as paths (the interface is `IndexFolder`'s) a generation is
    `root / SCHEMA_NAME`, and the root data is `root` itself. The index folder holds at most
    embedded Chroma's `chroma/` (in `root`, or in a generation's folder) when no Chroma server
    is used.
    """

    VERSION_KEY = "version"
    LIVE_KEY = "live"
    GENERATION_KEY = "generation:"  # + schema name: created by a rebuild of this index

    def __init__(self, root: str | Path, database: Database):
        super().__init__(root)
        self.database = database

    def where(self) -> str:
        return safe_url(self.database.url)

    # ---- reading ------------------------------------------------------------------------

    def live(self) -> Path:
        """`root / SCHEMA` when a rebuild made a generation live, else `root` (the root schema's data)."""
        query = text(
            f"SELECT m.value, n.nspname IS NOT NULL FROM {META_TABLE} AS m "
            "LEFT JOIN pg_catalog.pg_namespace AS n ON n.nspname = m.value WHERE m.key = :key"
        )
        row = self.database.read(lambda db: db.execute(query, {"key": self.LIVE_KEY}).first())
        if row is None:
            return self.root
        name, exists = row
        if not GENERATION_NAME.fullmatch(name) or not exists:
            raise IndexStoreError(
                f"the database {self.where()} names {name!r} as its live index (the {self.LIVE_KEY!r} row of "
                f"{META_TABLE}), which is not a schema {SCHEMA_PREFIX}... of this database. Restore the schema, "
                f"or delete that row to use the tables in the database's own schema "
                f"(DELETE FROM {META_TABLE} WHERE key = '{self.LIVE_KEY}')"
            )
        return self.root / name

    def token(self) -> str:
        """The shared change token: a new value at every write session's start and end, and at a switch."""
        return self.database.get_meta(self.VERSION_KEY) or ""

    def data_database(self, data_dir: Path) -> Database:
        """The database holding `data_dir`'s data: the root one for `root`, else one working in
        the generation's schema (new; the caller disposes it)."""
        if data_dir == self.root:
            return self.database
        return Database(
            self.database.url.render_as_string(hide_password=False),
            self.database.namespace,
            schema=self._schema_of(data_dir),
        )

    def _schema_of(self, generation: Path) -> str:
        if generation.parent != self.root or not GENERATION_NAME.fullmatch(generation.name):
            raise ValueError(
                f"{generation} is not a generation of the index in {self.where()}: expected {self.root}/"
                f"{SCHEMA_PREFIX}YYYYMMDDtHHMMSS_xxxxxx (lower-case letters, digits and _)"
            )
        return generation.name

    # ---- writing ------------------------------------------------------------------------

    @contextmanager
    def writing(self, wait: float | None = None, on_wait: Callable[[], None] | None = None) -> Iterator[str]:
        """Hold the database's write lock for a write session (see `IndexFolder.writing`),
        dropping what a rebuild that failed or was killed left first."""
        with self.database.write_lock(wait, on_wait, self._busy):
            self.remove_stale_generations()
            before = self.token()
            self.touch()
            yield before

    def _busy(self) -> IndexBusyError:
        return IndexBusyError(
            f"another process is writing to the index in {self.where()} (indexing, pruning or "
            "rebuilding); try again when it has finished"
        )

    def touch(self, data_dir: Path | None = None) -> None:
        """A new change token (shared by all generations: `data_dir` makes no difference)."""
        self.database.set_meta(self.VERSION_KEY, uuid.uuid4().hex)

    def new_generation(self) -> Path:
        """A new, empty schema (not live until `switch`), recorded as this index's in the root's
        meta table in the same transaction, so that a kill leaves nothing unrecorded."""
        stamp = datetime.now(UTC).strftime("%Y%m%dt%H%M%S")
        schema = f"{SCHEMA_PREFIX}{stamp}_{uuid.uuid4().hex[:6]}"
        with self.database.begin() as db:
            db.execute(text(f"CREATE SCHEMA {schema}"))
            put_meta(db, self.GENERATION_KEY + schema, stamp)
        return self.root / schema

    def switch(self, generation: Path) -> Path:
        """Make `generation` the live data: the pointer and the change token in one transaction,
        so every process that reads the new token opens the new schema. Returns the old live
        data; the caller removes it (`remove`) once nothing in this process uses it."""
        schema = self._schema_of(generation)
        old = self.live()
        exists = text("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = :name")
        with self.database.begin() as db:
            if db.execute(exists, {"name": schema}).first() is None:
                raise ValueError(f"{generation} is not a generation of the index in {self.where()}: no schema {schema}")
            put_meta(db, self.LIVE_KEY, schema)
            put_meta(db, self.VERSION_KEY, uuid.uuid4().hex)
        return old

    def remove(self, data_dir: Path) -> None:
        """Drop a generation that is no longer live (its schema and folder), or the root's data
        once a generation is live (its tables, its manifest, its `chroma/`)."""
        if data_dir == self.live():
            raise ValueError(f"{data_dir} is the live index; it cannot be removed")
        if data_dir == self.root:
            self._remove_root_data()
            return
        schema = self._schema_of(data_dir)
        with self.database.begin() as db:
            db.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            db.execute(text(f"DELETE FROM {META_TABLE} WHERE key = :key"), {"key": self.GENERATION_KEY + schema})
        _remove_folder(data_dir)

    def remove_stale_generations(self) -> list[Path]:
        """Drop the generations this index created that are not live (left by a rebuild that
        failed or was killed, or whose old data could not be removed), their folders, and the
        root's data when a generation is live. Only call with the write lock."""
        live = self.live()
        prefix = self.GENERATION_KEY
        query = text(f"SELECT key FROM {META_TABLE} WHERE key LIKE :prefix")
        keys = self.database.read(lambda db: list(db.execute(query, {"prefix": prefix + "%"}).scalars()))
        stale = {
            self.root / key.removeprefix(prefix) for key in keys if GENERATION_NAME.fullmatch(key.removeprefix(prefix))
        }
        stale |= {p for p in self.root.glob(f"{SCHEMA_PREFIX}*") if p.is_dir() and GENERATION_NAME.fullmatch(p.name)}
        stale.discard(live)
        for path in sorted(stale):
            self.remove(path)
        removed = sorted(stale)
        if live != self.root and (self._root_tables(live.name) or (self.root / "chroma").exists()):
            self._remove_root_data()
            removed.append(self.root)
        return removed

    def _root_tables(self, generation: str) -> list[str]:
        """The root schema's tables that the generation `generation` has too (the meta table
        aside): the root's data, whatever tables the current code keeps an index in."""
        query = text(
            "SELECT r.tablename FROM pg_catalog.pg_tables AS r JOIN pg_catalog.pg_tables AS g "
            "ON g.tablename = r.tablename WHERE r.schemaname = current_schema() AND g.schemaname = :gen "
            "AND r.tablename <> :meta ORDER BY 1"
        )
        return self.database.read(lambda db: list(db.execute(query, {"gen": generation, "meta": META_TABLE}).scalars()))

    def _remove_root_data(self) -> None:
        """Drop the root schema's index tables and manifest (the data of an index made before
        generations) once a generation is live; the meta table (token, pointer) and other
        tables (the feed subscriptions) stay."""
        live = self.live()
        if live == self.root:
            raise ValueError(f"{self.root} is the live index; it cannot be removed")
        from articleqa.index.store import MANIFEST_KEY  # store imports this module

        tables = self._root_tables(live.name)
        quote = self.database.engine.dialect.identifier_preparer.quote
        with self.database.begin() as db:
            if tables:
                root = db.execute(text("SELECT current_schema()")).scalar()
                names = ", ".join(f"{quote(root)}.{quote(t)}" for t in tables)
                db.execute(text(f"DROP TABLE IF EXISTS {names} CASCADE"))
            db.execute(text(f"DELETE FROM {META_TABLE} WHERE key = :key"), {"key": MANIFEST_KEY})
        _remove_folder(self.root / "chroma")


def _remove_folder(path: Path) -> None:
    """Remove embedded Chroma's data of a generation (absent with a Chroma server)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
