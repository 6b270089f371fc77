"""The feeds an index follows, and what each poll of them found (`subscriptions.sqlite`).

`articleqa watch` and `articleqa serve --watch` read the same list, so it lives in the index
folder, beside the index it feeds. Per subscription: when it was added, the validators for the
next conditional request (ETag, Last-Modified), when it was last polled and the last error,
the back-off (consecutive failures, no poll before `retry_at`) and how many articles it added
and updated. Per entry seen: the entry's canonical URL and fingerprint (a hash of what the feed
says about it, `FeedEntry.fingerprint`), so that an unchanged entry's page is not fetched
again, and the article it gave (or the error, for a page that could not be read).

SQLAlchemy Core over a database URL: `SubscriptionStore.for_index` gives the SQLite file of an
index folder (WAL and a busy timeout, like the index's own SQLite files: a watcher and the web
app may write at the same time), or, for an index whose data is in PostgreSQL (`--database-url`),
two tables in that database, so that watchers and web replicas on any machine share the list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, ProgrammingError

from articleqa.index.sources import canonical_url, is_url

SUBSCRIPTIONS_FILE = "subscriptions.sqlite"
BUSY_TIMEOUT_S = 30.0

_metadata = MetaData()
_subscriptions = Table(
    "articleqa_subscriptions",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String, nullable=False, unique=True),  # canonical_url(url): one row per feed
    Column("url", Text, nullable=False),  # as the user gave it
    Column("added_at", DateTime, nullable=False),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_poll_at", DateTime),
    Column("last_error", Text),
    Column("failures", Integer, nullable=False, default=0),  # consecutive failed polls
    Column("retry_at", DateTime),  # no poll before this (back-off, Retry-After)
    Column("articles_added", Integer, nullable=False, default=0),
    Column("articles_updated", Integer, nullable=False, default=0),
)
_entries = Table(
    "articleqa_seen_entries",
    _metadata,
    Column("subscription_id", Integer, ForeignKey("articleqa_subscriptions.id", ondelete="CASCADE"), primary_key=True),
    Column("url", String, primary_key=True),  # canonical_url of the entry's link
    Column("fingerprint", String, nullable=False),
    Column("article_id", Text),
    Column("error", Text),
    Column("seen_at", DateTime, nullable=False),
)


@dataclass(frozen=True)
class Subscription:
    """One followed feed or sitemap, with the state of its polls (times in UTC)."""

    url: str
    added_at: datetime
    etag: str | None = None
    last_modified: str | None = None
    last_poll_at: datetime | None = None
    last_error: str | None = None
    failures: int = 0
    retry_at: datetime | None = None
    articles_added: int = 0
    articles_updated: int = 0


@dataclass(frozen=True)
class SeenEntry:
    """An entry handled by an earlier poll: its fingerprint then, and what it gave."""

    fingerprint: str
    article_id: str | None = None
    error: str | None = None


def now_utc() -> datetime:
    return datetime.now(UTC)


def _stored(value: datetime | None) -> datetime | None:
    """Times are stored as naive UTC (SQLite keeps no time zone)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value is not None else None


def _loaded(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None


def check_feed_url(url: str) -> str:
    """A subscription's URL, stripped; ValueError naming it unless it is http(s)."""
    url = url.strip()
    if not is_url(url):
        raise ValueError(f"{url!r} is not a feed URL: subscriptions are http:// or https:// URLs of feeds or sitemaps")
    return url


class SubscriptionStore:
    """The subscriptions in a database.

    Args:
        database_url: an SQLAlchemy URL, e.g. `sqlite:////path/to/subscriptions.sqlite`.
    """

    def __init__(self, database_url: str):
        self.database_url = database_url
        self.engine = _engine(database_url)
        try:
            _metadata.create_all(self.engine)
        except (IntegrityError, ProgrammingError):
            # Another process created the tables between the check and the CREATE (PostgreSQL
            # has no CREATE TABLE IF NOT EXISTS that is safe against that): they exist now.
            _metadata.create_all(self.engine)

    @classmethod
    def for_index(cls, index_dir: str | Path, database_url: str | None = None) -> SubscriptionStore:
        """The subscriptions of an index: in its database when it has one (`--database-url`),
        else in its folder's `subscriptions.sqlite`."""
        if not database_url:
            return cls.in_folder(index_dir)
        from articleqa.index.database import parse_database_url  # the index's own URL rules

        return cls(parse_database_url(database_url).render_as_string(hide_password=False))

    @classmethod
    def in_folder(cls, index_dir: str | Path) -> SubscriptionStore:
        """The subscriptions of an index folder (its `subscriptions.sqlite`, made when missing)."""
        folder = Path(index_dir).expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{folder / SUBSCRIPTIONS_FILE}")

    # ---- the list ---------------------------------------------------------------------------

    def add(self, urls: Iterable[str]) -> list[str]:
        """Follow these feeds (those already followed are left as they are).

        Returns:
            The URLs newly added, in order.

        Raises:
            ValueError: a URL that is not http(s) (nothing is added then).
        """
        wanted = [check_feed_url(url) for url in urls]
        added: list[str] = []
        with self.engine.begin() as conn:
            for url in wanted:
                key = canonical_url(url)
                if conn.execute(select(_subscriptions.c.id).where(_subscriptions.c.key == key)).first():
                    continue
                conn.execute(insert(_subscriptions).values(key=key, url=url, added_at=_stored(now_utc())))
                added.append(url)
        return added

    def remove(self, url: str) -> bool:
        """Stop following a feed (its seen entries go too; its articles stay in the index).

        Returns:
            False when it was not followed.
        """
        key = canonical_url(url.strip())
        with self.engine.begin() as conn:
            row = conn.execute(select(_subscriptions.c.id).where(_subscriptions.c.key == key)).first()
            if row is None:
                return False
            conn.execute(delete(_entries).where(_entries.c.subscription_id == row.id))
            conn.execute(delete(_subscriptions).where(_subscriptions.c.id == row.id))
        return True

    def list(self) -> list[Subscription]:
        """Every subscription, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(_subscriptions).order_by(_subscriptions.c.id)).all()
        return [_subscription(row) for row in rows]

    def get(self, url: str) -> Subscription | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_subscriptions).where(_subscriptions.c.key == canonical_url(url))).first()
        return _subscription(row) if row is not None else None

    # ---- polls ------------------------------------------------------------------------------

    def seen(self, url: str) -> dict[str, SeenEntry]:
        """The entries an earlier poll of feed `url` handled, by canonical entry URL."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(_entries.c.url, _entries.c.fingerprint, _entries.c.article_id, _entries.c.error)
                .join(_subscriptions, _subscriptions.c.id == _entries.c.subscription_id)
                .where(_subscriptions.c.key == canonical_url(url))
            ).all()
        return {row.url: SeenEntry(row.fingerprint, row.article_id, row.error) for row in rows}

    def record_entries(self, url: str, entries: Mapping[str, SeenEntry], *, added: int = 0, updated: int = 0) -> None:
        """Remember entries as handled (keyed by canonical entry URL) and count the articles
        they added and updated, in one transaction: called once their articles are indexed."""
        when = _stored(now_utc())
        with self.engine.begin() as conn:
            sub_id = self._id(conn, url)
            if sub_id is None:  # removed meanwhile (the web app): nothing to record
                return
            for entry_url, seen in entries.items():
                values = {"fingerprint": seen.fingerprint, "article_id": seen.article_id, "error": seen.error}
                done = conn.execute(
                    update(_entries)
                    .where(_entries.c.subscription_id == sub_id, _entries.c.url == entry_url)
                    .values(**values, seen_at=when)
                )
                if not done.rowcount:
                    conn.execute(insert(_entries).values(subscription_id=sub_id, url=entry_url, seen_at=when, **values))
            if added or updated:
                conn.execute(
                    update(_subscriptions)
                    .where(_subscriptions.c.id == sub_id)
                    .values(
                        articles_added=_subscriptions.c.articles_added + added,
                        articles_updated=_subscriptions.c.articles_updated + updated,
                    )
                )

    def record_poll(
        self,
        url: str,
        *,
        error: str | None,
        failed: bool = False,
        retry_at: datetime | None = None,
        validators: tuple[str | None, str | None] | None = None,
    ) -> None:
        """Record a poll's outcome.

        Args:
            url: the subscription.
            error: the last error to show (None: none), for a failed poll or failed entries.
            failed: the poll failed as a whole: one more consecutive failure (else back to 0).
            retry_at: no poll before this time (None: whenever the next one comes).
            validators: `(etag, last_modified)` for the next conditional request; None keeps
                the stored ones (a failed or incomplete poll must fetch the whole feed again).
        """
        values: dict[str, object] = {
            "last_poll_at": _stored(now_utc()),
            "last_error": error,
            "retry_at": _stored(retry_at),
            "failures": (_subscriptions.c.failures + 1) if failed else 0,
        }
        if validators is not None:
            values["etag"], values["last_modified"] = validators
        with self.engine.begin() as conn:
            conn.execute(update(_subscriptions).where(_subscriptions.c.key == canonical_url(url)).values(**values))

    def close(self) -> None:
        self.engine.dispose()

    @staticmethod
    def _id(conn, url: str) -> int | None:
        row = conn.execute(select(_subscriptions.c.id).where(_subscriptions.c.key == canonical_url(url))).first()
        return row.id if row is not None else None


def _subscription(row) -> Subscription:
    return Subscription(
        url=row.url,
        added_at=_loaded(row.added_at),
        etag=row.etag,
        last_modified=row.last_modified,
        last_poll_at=_loaded(row.last_poll_at),
        last_error=row.last_error,
        failures=row.failures,
        retry_at=_loaded(row.retry_at),
        articles_added=row.articles_added,
        articles_updated=row.articles_updated,
    )


def _engine(database_url: str) -> Engine:
    """An engine; for SQLite, WAL (a killed writer leaves no hot journal) and a busy timeout
    (the watcher and the web app may write at once)."""
    if not database_url.startswith("sqlite"):
        return create_engine(database_url)
    engine = create_engine(database_url, connect_args={"timeout": BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _wal(connection, _record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine
