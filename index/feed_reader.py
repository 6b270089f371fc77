"""Read a news feed or sitemap as a source of articles: its entries, then each entry's page.

A feed (RSS, Atom) or sitemap (plain, Google News, or a sitemap index, followed to
`MAX_SITEMAP_DEPTH` levels and `MAX_DOCUMENTS` documents) lists article URLs; every one of them
is fetched and extracted exactly like a page named on the command line, under the same
`FetchPolicy` and through the same safe fetching (`index.fetch.fetch_url`). What the feed says
about an entry (title, date, author, publication) fills in what the page leaves out, and when
the page gives no article text at all the feed's own text for the entry is used.

A bad entry is one failure, named by its URL; the other entries are read. Entries beyond
`MAX_ENTRIES` (the newest are kept) are listed as skipped, not as failures.

`list_entries` and `entry_article` take the fetch function as an argument: the feed poller
(`index.watch`) passes one that waits politely per host and sends conditional requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Protocol

from articleqa.index.feeds import GZIP_MAGIC, Feed, FeedEntry, FeedError, FeedKind, feed_kind, gunzip, parse_feed
from articleqa.index.fetch import FEED_CONTENT_TYPES, HTML_CONTENT_TYPES, Fetched, fetch_url
from articleqa.index.formats import FormatError, PageHints, parse_html
from articleqa.index.models import Article, SourceFailure
from articleqa.index.sources import FetchError, FetchPolicy, canonical_url, url_article_id

# A sitemap index of sitemap indexes of sitemaps is as deep as real sites go.
MAX_SITEMAP_DEPTH = 3
# Feed and sitemap documents fetched for one source, the first one included.
MAX_DOCUMENTS = 50
# Article pages read for one source; a sitemap may list 50,000 (the newest are kept).
MAX_ENTRIES = 2000


class Fetch(Protocol):
    """`index.fetch.fetch_url`'s signature, for a caller's wrapper around it."""

    def __call__(self, url: str, *, policy: FetchPolicy, accept: tuple[str, ...] = ...) -> Fetched: ...


class Skipped(SourceFailure):
    """An entry passed over on purpose (over `MAX_ENTRIES`): reported, but not a failure."""


@dataclass(frozen=True)
class FeedListing:
    """Every entry one feed source lists, with what could not be listed.

    Attributes:
        kind: the first document's kind.
        title: the feed's title (None for sitemaps).
        entries: the entries to read, in document order, each URL once.
        failures: child sitemaps that could not be fetched or parsed, and entries without a
            link, each with its URL (or the feed's and where in it) and the reason.
        skipped: entries over `MAX_ENTRIES` and sitemaps over the depth or count limits.
    """

    kind: FeedKind
    title: str | None
    entries: tuple[FeedEntry, ...]
    failures: tuple[SourceFailure, ...] = ()
    skipped: tuple[SourceFailure, ...] = ()


def feed_document(fetched: Fetched, max_bytes: int) -> bytes | None:
    """The feed or sitemap in a response (decompressed), or None for an HTML page.

    Raises:
        FeedError: a feed media type (XML, gzip) whose content is no feed or sitemap.
    """
    data = fetched.body
    if data.startswith(GZIP_MAGIC):  # a compressed sitemap file, not a Content-Encoding
        data = gunzip(data, max_bytes)
    if feed_kind(data) is not None:
        return data
    if fetched.content_type in FEED_CONTENT_TYPES:
        raise FeedError(
            f"the {fetched.content_type} document is not a news feed or sitemap "
            "(expected an <rss>, Atom <feed>, <urlset> or <sitemapindex> root element)"
        )
    return None


def list_entries(
    data: bytes, *, origin: str, base_url: str | None, policy: FetchPolicy, fetch: Fetch = fetch_url
) -> FeedListing:
    """The entries of a feed or sitemap document, following a sitemap index's sitemaps.

    Args:
        data: the document (decompressed).
        origin: the feed's URL or file path, naming its failures.
        base_url: the URL it came from (relative links resolve against it); None for a file.
        policy: the limits child sitemaps are fetched under.
        fetch: how child sitemaps are fetched.

    Raises:
        FeedError: the document itself is not a readable feed or sitemap.
    """
    first = parse_feed(data, base_url=base_url)
    failures: list[SourceFailure] = _problems(first, origin)
    skipped: list[SourceFailure] = []
    entries: list[FeedEntry] = list(first.entries)
    pending = [(url, 1) for url in first.sitemaps]
    seen = {base_url} if base_url else set()
    fetched_documents = 1
    while pending:
        url, depth = pending.pop(0)
        if url in seen:
            continue
        seen.add(url)
        if depth > MAX_SITEMAP_DEPTH:
            skipped.append(Skipped(origin=url, reason=f"sitemap nested deeper than {MAX_SITEMAP_DEPTH} levels"))
            continue
        if fetched_documents >= MAX_DOCUMENTS:
            skipped.append(Skipped(origin=url, reason=f"more than {MAX_DOCUMENTS} sitemaps in one source"))
            continue
        fetched_documents += 1
        try:
            fetched = fetch(url, policy=policy, accept=FEED_CONTENT_TYPES + HTML_CONTENT_TYPES)
            child_data = feed_document(fetched, policy.max_bytes)
            if child_data is None:
                raise FeedError("not a news feed or sitemap (an HTML page)")
            child = parse_feed(child_data, base_url=fetched.url)
        except (FetchError, FeedError) as exc:
            failures.append(SourceFailure(origin=url, reason=str(exc)))
            continue
        failures += _problems(child, url)
        entries += child.entries
        pending += [(sub, depth + 1) for sub in child.sitemaps]
    entries = _unique(entries)
    if len(entries) > MAX_ENTRIES:
        # Keep the newest (entries without a date last), then restore the document order.
        newest = sorted(range(len(entries)), key=lambda i: _when(entries[i]), reverse=True)[:MAX_ENTRIES]
        keep = set(newest)
        skipped += [
            Skipped(origin=e.url, reason=f"over the limit of {MAX_ENTRIES} articles per feed (the newest are read)")
            for i, e in enumerate(entries)
            if i not in keep
        ]
        entries = [e for i, e in enumerate(entries) if i in keep]
    return FeedListing(
        kind=first.kind, title=first.title, entries=tuple(entries), failures=tuple(failures), skipped=tuple(skipped)
    )


def entry_article(entry: FeedEntry, *, policy: FetchPolicy, fetch: Fetch = fetch_url) -> Article:
    """Fetch and extract an entry's page, the feed's metadata filling the page's gaps.

    The article is the page's, exactly as for a URL named on the command line (its id from
    the page's canonical URL, its origin the entry's URL); when the page has no article text
    (a page built by scripts, say) but the feed carries the entry's text, that text is used.

    Raises:
        FetchError: the page could not be fetched (`TransientFetchError`: worth retrying).
        FormatError: the page holds no article and the feed gives no text either.
    """
    fetched = fetch(entry.url, policy=policy, accept=HTML_CONTENT_TYPES)
    hints = PageHints(title=entry.title, published_at=entry.published_date, author=entry.author, source=entry.source)
    try:
        return parse_html(fetched.page(), origin=entry.url, page_url=fetched.url, known=hints)
    except FormatError as exc:
        if not entry.summary or not str(exc).startswith("no article text"):
            raise
    return Article(
        id=url_article_id(fetched.url),
        title=entry.title or entry.summary.split("\n", 1)[0][:200],
        text=entry.summary,
        source=entry.source,
        url=fetched.url,
        published_at=entry.published_date,
        author=entry.author,
        origin=entry.url,
    )


def read_feed(
    data: bytes, *, origin: str, base_url: str | None, policy: FetchPolicy
) -> Iterator[Article | SourceFailure]:
    """Every article a feed or sitemap lists, and a failure for each entry that could not be read.

    Args:
        data: the feed or sitemap document (decompressed).
        origin: the feed's URL as given, or the file's path.
        base_url: the URL it was fetched from (after redirects); None for a file.
        policy: the limits every page and child sitemap is fetched under.

    Returns:
        Articles, `SourceFailure`s (origin: the entry's URL, or the feed's) and `Skipped`
        notices, in feed order.
    """
    try:
        listing = list_entries(data, origin=origin, base_url=base_url, policy=policy)
    except FeedError as exc:
        yield SourceFailure(origin=origin, reason=str(exc))
        return
    yield from listing.failures
    yield from listing.skipped
    for entry in listing.entries:
        try:
            yield entry_article(entry, policy=policy)
        except (FetchError, FormatError) as exc:
            yield SourceFailure(origin=entry.url, reason=str(exc))
        except Exception as exc:  # noqa: BLE001 -- a parser bug on one page must not stop the feed
            yield SourceFailure(origin=entry.url, reason=f"unexpected error: {type(exc).__name__}: {exc}")


def _problems(feed: Feed, origin: str) -> list[SourceFailure]:
    return [SourceFailure(origin=origin, reason=f"{where}: {reason}") for where, reason in feed.problems]


def _unique(entries: list[FeedEntry]) -> list[FeedEntry]:
    """Each article URL once across the documents of a source (the first entry wins)."""
    seen: set[str] = set()
    out = []
    for entry in entries:
        key = canonical_url(entry.url)
        if key not in seen:
            seen.add(key)
            out.append(entry)
    return out


def _when(entry: FeedEntry) -> float:
    when = entry.published or entry.updated
    if when is None:
        return float("-inf")
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
