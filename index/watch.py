"""Follow news feeds: poll the subscriptions, index the articles that are new or changed.

One poll reads each subscription (`index.subscriptions`) once:

- the feed is fetched with its validators from the last poll (If-None-Match, If-Modified-Since):
  a 304 costs no parsing and no other request;
- an entry whose fingerprint (what the feed says about it) is the one seen before is not
  fetched again; a new or changed entry's page is fetched and extracted like any article URL
  (`index.feed_reader.entry_article`) and indexed through the usual incremental indexing, which
  tells a changed article (updated) from a re-published unchanged one;
- requests to one host are made one at a time, `host_delay` seconds apart (`HostPacer`), and
  never before the time a 429 or 503's Retry-After named; different hosts are polled in
  parallel (up to `MAX_HOSTS_AT_ONCE`), so a slow site holds up only its own subscriptions;
- a source that fails (an error status, a timeout, not a feed) is named in its poll line and
  polled again later, after a back-off that doubles with each consecutive failure (from one
  interval up to `MAX_BACKOFF`, never sooner than its Retry-After); the other sources go on.

A page that could not be read because of the server's state (a timeout, 429, 5xx) is retried on
the next poll, and the feed's validators are not saved until every entry has been read; a page
that cannot be read as such (404, no article text) is remembered with its error and tried again
only when its entry changes. Articles are indexed in batches as they are fetched, and each
batch's entries are recorded only once it is indexed: a poll stopped anywhere (Ctrl-C, the web
app shutting down) loses at most the batch in progress, which the next poll fetches again.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

from articleqa.index.defaults import DEFAULT_HOST_DELAY, DEFAULT_WATCH_EVERY
from articleqa.index.feed_reader import entry_article, feed_document, list_entries
from articleqa.index.feeds import FeedError
from articleqa.index.fetch import HTML_CONTENT_TYPES, PAGE_OR_FEED_TYPES, Fetched, TransientFetchError, fetch_url
from articleqa.index.formats import FormatError
from articleqa.index.models import Article, IndexReport, SourceFailure
from articleqa.index.sources import FetchError, FetchPolicy, canonical_url
from articleqa.index.subscriptions import SeenEntry, Subscription, SubscriptionStore, now_utc

__all__ = [
    "DEFAULT_HOST_DELAY",
    "DEFAULT_WATCH_EVERY",
    "HOST_DELAY_SETTING",
    "HostPacer",
    "PollResult",
    "Poller",
    "Stopped",
    "index_into",
    "parse_interval",
]

HOST_DELAY_SETTING = "ARTICLEQA_WATCH_HOST_DELAY"
# The longest wait between two polls of a failing source.
MAX_BACKOFF = 6 * 3600.0
# A Retry-After up to this long is waited out within the poll; a longer one ends the
# source's poll, and its next poll comes after it.
MAX_INLINE_WAIT = 60.0
# Articles indexed (and their entries recorded) together.
BATCH = 16
# Hosts polled at the same time (each host's requests stay one at a time).
MAX_HOSTS_AT_ONCE = 4

IndexArticles = Callable[[Sequence[Article]], IndexReport]
"""Indexes articles incrementally and reports which were added, updated or unchanged."""

_INTERVAL = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
INTERVAL_FORMS = "a number with s, m, h or d, e.g. 30s, 15m, 1h or 1h30m"


class Stopped(Exception):
    """The poller was asked to stop (`Poller.stop`); the poll in progress is abandoned."""


def parse_interval(text: str) -> float:
    """A time between polls like "30s", "15m", "1h", "1h30m" or "90" (seconds), in seconds.

    Raises:
        ValueError: naming the value and the forms that are valid.
    """
    value = str(text).strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    while pos < len(value):
        match = _INTERVAL.match(value, pos)
        if match is None:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not value or pos != len(value) or total <= 0:
        raise ValueError(f"invalid interval {text!r}: use {INTERVAL_FORMS}")
    return total


def host_of(url: str) -> str:
    """The host a request goes to, port included: the unit of politeness."""
    parts = urlsplit(canonical_url(url))
    return parts.netloc


class HostPacer:
    """Requests to one host one at a time, `delay` seconds apart, and none before a Retry-After.

    Args:
        delay: seconds from the end of one request to the start of the next to the same host.
        stop: set to abandon waits (raises `Stopped`).
    """

    def __init__(self, delay: float = DEFAULT_HOST_DELAY, stop: threading.Event | None = None):
        if delay < 0:
            raise ValueError(f"the delay between requests to one host must be 0 or more seconds, got {delay!r}")
        self.delay = delay
        self.stop = stop or threading.Event()
        self._lock = threading.Lock()
        self._hosts: dict[str, threading.Lock] = {}
        self._next: dict[str, float] = {}  # monotonic time of the next allowed request

    def hold(self, url: str, seconds: float) -> None:
        """No request to `url`'s host for `seconds` (a Retry-After)."""
        host = host_of(url)
        with self._lock:
            self._next[host] = max(self._next.get(host, 0.0), time.monotonic() + seconds)

    def held_for(self, url: str) -> float:
        """Seconds until the next request to `url`'s host may start (0: now)."""
        with self._lock:
            return max(0.0, self._next.get(host_of(url), 0.0) - time.monotonic())

    @contextmanager
    def request(self, url: str) -> Iterator[None]:
        """Wait for `url`'s host to be free and its delay to pass; the request runs inside."""
        host = host_of(url)
        with self._lock:
            lock = self._hosts.setdefault(host, threading.Lock())
        while not lock.acquire(timeout=0.2):
            if self.stop.is_set():
                raise Stopped()
        try:
            while (left := self.held_for(url)) > 0:
                if self.stop.wait(left):
                    raise Stopped()
            if self.stop.is_set():
                raise Stopped()
            try:
                yield
            finally:
                with self._lock:
                    self._next[host] = max(self._next.get(host, 0.0), time.monotonic() + self.delay)
        finally:
            lock.release()


Outcome = Literal["new", "updated", "unchanged", "failed", "waiting"]


@dataclass(frozen=True)
class PollResult:
    """What one poll of one subscription found.

    Attributes:
        url: the subscription.
        new, updated, unchanged: articles added to the index, changed in it, and entries
            that needed nothing (seen before, or fetched and found unchanged).
        failed: entries (or child sitemaps) that could not be read, with the reason.
        error: why the poll failed as a whole (the feed could not be fetched or read).
        not_modified: the server answered 304: nothing was parsed or fetched.
        waiting: not polled: the source is backing off until `retry_at`.
        retry_at: no poll of this source before this time (back-off, Retry-After).
        seconds: how long the poll took.
    """

    url: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: tuple[SourceFailure, ...] = ()
    error: str | None = None
    not_modified: bool = False
    waiting: bool = False
    retry_at: datetime | None = None
    seconds: float = 0.0

    @property
    def outcome(self) -> Outcome:
        """The one word for the poll: failed, waiting (backing off), new, updated or unchanged."""
        if self.waiting:
            return "waiting"
        if self.error is not None:
            return "failed"
        if self.new:
            return "new"
        if self.updated:
            return "updated"
        if self.failed:
            return "failed"
        return "unchanged"

    def line(self) -> str:
        """One line for the poll log: `URL: outcome: details`."""
        retry = f"; next try after {self.retry_at:%Y-%m-%d %H:%M:%S} UTC" if self.retry_at else ""
        if self.waiting:
            return f"{self.url}: waiting: backing off after errors{retry}"
        if self.error is not None:
            return f"{self.url}: failed: {self.error}{retry}"
        if self.not_modified:
            return f"{self.url}: unchanged (not modified since the last poll)"
        counts = f"{self.new} new, {self.updated} updated, {self.unchanged} unchanged, {len(self.failed)} failed"
        first = f" (first: {self.failed[0].origin}: {self.failed[0].reason})" if self.failed else ""
        return f"{self.url}: {self.outcome}: {counts}{first}{retry}"


def backoff(failures: int, every: float, retry_after: float | None) -> float:
    """Seconds until the next poll of a source that failed `failures` times in a row."""
    wait = min(every * 2 ** max(failures - 1, 0), MAX_BACKOFF)
    return max(wait, retry_after or 0.0)


@dataclass
class _Progress:
    """A source's poll in progress: counts, failures, the batch waiting to be indexed."""

    sub: Subscription
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[SourceFailure] = field(default_factory=list)
    complete: bool = True  # every entry read (else the validators are not saved)
    batch: list[tuple[str, str, Article]] = field(default_factory=list)  # (entry key, fingerprint, article)
    pending: dict[str, SeenEntry] = field(default_factory=dict)  # entries to record with the batch


class Poller:
    """Polls subscriptions and indexes what they bring.

    Args:
        subscriptions: the list and its state.
        index: indexes a batch of articles (`index_into(store)`, or the web app's library).
        policy: the limits of every request (the same as `articleqa index`'s).
        host_delay: seconds between two requests to one host.
        every: the time between polls (the unit of the back-off).
        stop: set it to stop the poller between requests.
    """

    def __init__(
        self,
        subscriptions: SubscriptionStore,
        index: IndexArticles,
        *,
        policy: FetchPolicy = FetchPolicy(),
        host_delay: float = DEFAULT_HOST_DELAY,
        every: float = parse_interval(DEFAULT_WATCH_EVERY),
        stop: threading.Event | None = None,
    ):
        self.subscriptions = subscriptions
        self.index = index
        self.policy = policy
        self.every = every
        self.stop = stop or threading.Event()
        self.pacer = HostPacer(host_delay, self.stop)
        self._index_lock = threading.Lock()

    # ---- the loop ---------------------------------------------------------------------------

    def run(self, on_result: Callable[[PollResult], None], *, once: bool = False) -> None:
        """Poll every subscription, then wait `every` seconds, until `stop` is set (or once).

        Raises:
            Stopped: `stop` was set during a poll.
        """
        while True:
            self.poll(on_result)
            if once or self.stop.wait(self.every):
                return

    def poll(self, on_result: Callable[[PollResult], None] | None = None) -> list[PollResult]:
        """Poll each subscription once: the hosts in parallel (up to `MAX_HOSTS_AT_ONCE`), the
        subscriptions of one host one after another, in the order they were added.

        A slow or hanging site therefore delays only its own subscriptions. Indexing is one
        batch at a time (the model has the CPU's cores to itself), and `on_result` is called
        from one thread at a time.

        Returns:
            The results in the order the subscriptions were added.
        """
        subs = self.subscriptions.list()
        by_host: dict[str, list[Subscription]] = {}
        for sub in subs:
            by_host.setdefault(host_of(sub.url), []).append(sub)
        results: dict[str, PollResult] = {}
        report_lock = threading.Lock()

        def poll_host(host_subs: list[Subscription]) -> None:
            for sub in host_subs:
                if self.stop.is_set():
                    raise Stopped()
                result = self.poll_one(sub)
                with report_lock:
                    results[sub.url] = result
                    if on_result is not None:
                        on_result(result)

        groups = list(by_host.values())
        if len(groups) <= 1:
            for group in groups:
                poll_host(group)
        else:
            with ThreadPoolExecutor(min(len(groups), MAX_HOSTS_AT_ONCE), thread_name_prefix="articleqa-poll") as pool:
                futures = [pool.submit(poll_host, group) for group in groups]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    self.stop.set()  # Ctrl-C, or Stopped in one worker: the others stop too
                    raise
        return [results[sub.url] for sub in subs if sub.url in results]

    # ---- one source -------------------------------------------------------------------------

    def poll_one(self, sub: Subscription) -> PollResult:
        """Poll one subscription: never raises for the source's own problems (`Stopped` and
        KeyboardInterrupt go through)."""
        started = time.monotonic()
        now = now_utc()
        if sub.retry_at is not None and sub.retry_at > now + timedelta(seconds=1):
            return PollResult(url=sub.url, waiting=True, retry_at=sub.retry_at)
        progress = _Progress(sub)
        try:
            fetched = self._fetch(sub.url, accept=PAGE_OR_FEED_TYPES, etag=sub.etag, last_modified=sub.last_modified)
            if fetched.not_modified:
                self.subscriptions.record_poll(sub.url, error=None, validators=(fetched.etag, fetched.last_modified))
                return PollResult(url=sub.url, not_modified=True, seconds=time.monotonic() - started)
            document = feed_document(fetched, self.policy.max_bytes)
            if document is None:
                raise FeedError("not a news feed or sitemap but a page (`articleqa index URL` reads pages)")
            listing = list_entries(
                document, origin=sub.url, base_url=fetched.url, policy=self.policy, fetch=self._fetch
            )
            progress.failed += listing.failures
            self._read_entries(progress, listing.entries)
            self._flush(progress)
        except (FetchError, FeedError) as exc:
            return self._failed(progress, str(exc), getattr(exc, "retry_after", None), started)
        except Exception as exc:
            if isinstance(exc, Stopped):
                raise
            # Indexing failed (another writer held the index, say): nothing of this poll is
            # recorded, so the next one reads the same entries again.
            return self._failed(progress, f"{type(exc).__name__}: {exc}", None, started)
        validators = (fetched.etag, fetched.last_modified) if progress.complete else None
        error = None
        if progress.failed:
            first = progress.failed[0]
            error = f"{len(progress.failed)} failed; first: {first.origin}: {first.reason}"
        retry_at = None
        if not progress.complete:
            held = self.pacer.held_for(sub.url)
            retry_at = now_utc() + timedelta(seconds=held) if held > 0 else None
        self.subscriptions.record_poll(sub.url, error=error, validators=validators, retry_at=retry_at)
        return PollResult(
            url=sub.url,
            new=progress.new,
            updated=progress.updated,
            unchanged=progress.unchanged,
            failed=tuple(progress.failed),
            retry_at=retry_at,
            seconds=time.monotonic() - started,
        )

    def _failed(self, progress: _Progress, reason: str, retry_after: float | None, started: float) -> PollResult:
        sub = progress.sub
        retry_at = now_utc() + timedelta(seconds=backoff(sub.failures + 1, self.every, retry_after))
        self.subscriptions.record_poll(sub.url, error=reason, failed=True, retry_at=retry_at)
        return PollResult(
            url=sub.url,
            new=progress.new,
            updated=progress.updated,
            failed=tuple(progress.failed),
            error=reason,
            retry_at=retry_at,
            seconds=time.monotonic() - started,
        )

    def _read_entries(self, progress: _Progress, entries) -> None:
        """Fetch the entries that are new or changed, indexing them in batches."""
        seen = self.subscriptions.seen(progress.sub.url)
        for entry in entries:
            key = canonical_url(entry.url)
            before = seen.get(key)
            if before is not None and before.fingerprint == entry.fingerprint:
                progress.unchanged += 1
                continue
            if self.pacer.held_for(entry.url) > MAX_INLINE_WAIT:
                progress.complete = False  # the server asked for a long pause: the next poll goes on
                break
            try:
                article = entry_article(entry, policy=self.policy, fetch=self._fetch)
            except TransientFetchError as exc:
                progress.failed.append(SourceFailure(origin=entry.url, reason=str(exc)))
                progress.complete = False  # retried next poll
                continue
            except (FetchError, FormatError) as exc:
                progress.failed.append(SourceFailure(origin=entry.url, reason=str(exc)))
                progress.pending[key] = SeenEntry(entry.fingerprint, error=str(exc))
                continue
            progress.batch.append((key, entry.fingerprint, article))
            if len(progress.batch) >= BATCH:
                self._flush(progress)

    def _flush(self, progress: _Progress) -> None:
        """Index the batch, then record its entries (and the failed ones) as seen."""
        batch, progress.batch = progress.batch, []
        articles: dict[str, Article] = {}
        for _key, _fingerprint, article in batch:
            articles.setdefault(article.id, article)  # two entries, one page: indexed once
        with self._index_lock:  # one batch at a time, whichever host's poll it comes from
            report = self.index(list(articles.values())) if articles else IndexReport()
        added, updated = set(report.added), set(report.updated)
        progress.new += len(added)
        progress.updated += len(updated)
        progress.unchanged += len(batch) - len(added) - len(updated)
        for key, fingerprint, article in batch:
            progress.pending[key] = SeenEntry(fingerprint, article_id=article.id)
        if progress.pending:
            self.subscriptions.record_entries(
                progress.sub.url, progress.pending, added=len(added), updated=len(updated)
            )
            progress.pending = {}

    def _fetch(
        self,
        url: str,
        *,
        policy: FetchPolicy | None = None,
        accept: tuple[str, ...] = HTML_CONTENT_TYPES,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> Fetched:
        """`fetch_url`, paced per host; a 429 or 503's Retry-After holds the host.

        Raises:
            TransientFetchError: also, without a request, while the host is held for longer
                than `MAX_INLINE_WAIT` (another source on the same host got a long Retry-After).
        """
        held = self.pacer.held_for(url)
        if held > MAX_INLINE_WAIT:
            raise TransientFetchError(
                f"not requested: {host_of(url)} asked for a pause (Retry-After) of {held:.0f}s more",
                retry_after=held,
            )
        with self.pacer.request(url):
            try:
                return fetch_url(
                    url, policy=policy or self.policy, accept=accept, etag=etag, last_modified=last_modified
                )
            except TransientFetchError as exc:
                if exc.retry_after is not None:
                    self.pacer.hold(url, exc.retry_after)
                raise


def index_into(store, *, wait: float | None = None, on_wait: Callable[[], None] | None = None) -> IndexArticles:
    """Index articles into an open `IndexStore`, incrementally, under its write lock.

    The same steps as `index.indexer.index_paths` for articles already read: the manifest is
    written before the first chunk, and `Indexer.index_articles` adds new articles, replaces
    changed ones and leaves unchanged ones alone.
    """
    from articleqa.index.indexer import Indexer

    def index(articles: Sequence[Article]) -> IndexReport:
        started = time.perf_counter()
        report = IndexReport(index_dir=str(store.root))
        with store.write_session(wait, on_wait):
            if store.manifest is None:
                store.write_manifest(len(store.embeddings.embed_query("dimension probe")))
            Indexer(store).index_articles(articles, report=report)
        report.seconds = time.perf_counter() - started
        return report

    return index
