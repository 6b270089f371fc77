"""Read news articles from files, folders and URLs.

The public entry point is `load_articles`: it discovers the sources (`index.sources`),
parses each one (`index.formats`) and returns the articles with every failure named, so
that one bad input never stops a batch.

Supported inputs: `.txt` and `.md` (optional YAML front matter, headline line, text),
`.html`/`.htm` and `http(s)://` pages (main text extracted by trafilatura), `.json` (an
object or a list of objects) and `.jsonl` (one object a line). A URL that turns out to be a
news feed or sitemap (by its content, not its name), and a feed or sitemap file named directly
(`.xml`, `.rss`, `.atom`), stands for the articles it lists (`index.feed_reader`).

Hostile inputs give a failure with a reason, never an exception or a hang: files and pages
over `FetchPolicy.max_bytes`, special files (FIFOs are opened non-blocking and refused), link
loops, binary or mis-encoded text (any NUL byte counts as binary), JSON nested too deeply or
with numbers too long to convert, lone surrogates, and JSON lists with no object in them
(one failure, not one per item). A file with many bad records lists the first
`index.formats.MAX_RECORD_FAILURES` and counts the rest. URLs are fetched under the address
rules of `index.fetch.fetch_url`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from articleqa.index.feed_reader import Skipped, feed_document, read_feed
from articleqa.index.feeds import FeedError
from articleqa.index.fetch import PAGE_OR_FEED_TYPES, fetch_url
from articleqa.index.formats import (
    FormatError,
    decode_text,
    parse_html,
    parse_json,
    parse_jsonl,
    parse_text,
)
from articleqa.index.models import Article, SourceFailure
from articleqa.index.sources import (
    DEFAULT_EXCLUDES,
    FEED_EXTENSIONS,
    SUPPORTED_EXTENSIONS,
    USER_AGENT,
    FetchError,
    FetchPolicy,
    FileRef,
    SourceRef,
    UrlRef,
    describe_os_error,
    discover,
    read_file_bytes,
    supported_list,
    url_article_id,
)

__all__ = [
    "DEFAULT_EXCLUDES",
    "SUPPORTED_EXTENSIONS",
    "USER_AGENT",
    "FetchPolicy",
    "FileRef",
    "LoadResult",
    "SourceRef",
    "UrlRef",
    "discover",
    "load_articles",
    "read_source",
    "url_article_id",
]


# The limits used when the caller names none (frozen, so one shared instance is safe).
DEFAULT_POLICY = FetchPolicy()


@dataclass(frozen=True)
class LoadResult:
    """What one load produced.

    Attributes:
        articles: the articles read, in input order, ids unique.
        failures: inputs or records that could not be read; any failure means a non-zero exit.
        skipped: entries passed over while walking folders (excluded, hidden, unsupported
            extension); informational only.
        failed_origins: origins (absolute file or folder paths, URLs as given) with at least
            one failure; the indexer must keep their previously indexed articles.
    """

    articles: list[Article] = field(default_factory=list)
    failures: list[SourceFailure] = field(default_factory=list)
    skipped: list[SourceFailure] = field(default_factory=list)
    failed_origins: set[str] = field(default_factory=set)

    def origin_failed(self, origin: str) -> bool:
        """True when `origin` failed or lies inside a folder that could not be read.

        Args:
            origin: the origin of a previously indexed article.

        Returns:
            Whether that article must be kept rather than pruned.
        """
        if origin in self.failed_origins:
            return True
        # A folder that could not be listed hides its files: keep everything under it.
        return any(origin.startswith(failed.rstrip("/") + "/") for failed in self.failed_origins)


def _parse_file(data: bytes, ref: FileRef) -> list[Article | SourceFailure]:
    """Parse a file's bytes by its extension; a bad file gives one failure."""
    origin, default_id, extension = ref.origin, ref.default_id, ref.extension
    try:
        if extension in (".html", ".htm"):
            try:
                html: str | bytes = decode_text(data)
            except FormatError as exc:
                if not str(exc).startswith("invalid UTF-8"):
                    raise
                # HTML may declare another charset: trafilatura decodes the bytes itself.
                html = data
            return [parse_html(html, origin=origin, article_id=default_id)]
        text = decode_text(data)
        if extension in (".txt", ".md"):
            return [parse_text(text, origin=origin, default_id=default_id, markdown=extension == ".md")]
        if extension == ".json":
            return parse_json(text, origin=origin, default_id=default_id)
        if extension == ".jsonl":
            return parse_jsonl(text, origin=origin, default_id=default_id)
    except FormatError as exc:
        return [SourceFailure(origin=origin, reason=str(exc))]
    reason = f"unsupported file extension {extension!r} (supported: {supported_list()})"
    return [SourceFailure(origin=origin, reason=reason)]


def read_source(ref: SourceRef, *, policy: FetchPolicy = DEFAULT_POLICY) -> Iterator[Article | SourceFailure]:
    """Read one source and yield its articles and failures; never raises.

    Args:
        ref: a file or URL from `discover`.
        policy: time and size limits and the addresses that may be fetched.

    Returns:
        An iterator over the articles read and the failures (one per bad file, page, JSON
        record or feed entry), in file order; for a feed, also `feed_reader.Skipped` notices
        (entries over its limits), which are not failures.
    """
    origin = ref.origin
    try:
        if isinstance(ref, UrlRef):
            try:
                fetched = fetch_url(ref.url, policy=policy, accept=PAGE_OR_FEED_TYPES)
                feed = feed_document(fetched, policy.max_bytes)
                if feed is None:
                    yield parse_html(fetched.page(), origin=origin, page_url=fetched.url)
                    return
            except (FetchError, FormatError, FeedError) as exc:
                yield SourceFailure(origin=origin, reason=str(exc))
                return
            yield from read_feed(feed, origin=origin, base_url=fetched.url, policy=policy)
            return
        try:
            data = read_file_bytes(ref, max_bytes=policy.max_bytes)
        except FetchError as exc:
            yield SourceFailure(origin=origin, reason=str(exc))
            return
        except OSError as exc:
            yield SourceFailure(origin=origin, reason=describe_os_error(exc))
            return
        if ref.extension in FEED_EXTENSIONS:
            yield from read_feed(data, origin=origin, base_url=None, policy=policy)
            return
        yield from _parse_file(data, ref)
    except Exception as exc:  # noqa: BLE001 -- a parser bug on one input must not stop the batch
        yield SourceFailure(origin=origin, reason=f"unexpected error: {type(exc).__name__}: {exc}")


def load_articles(
    inputs: Sequence[str | Path],
    *,
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    policy: FetchPolicy = DEFAULT_POLICY,
    on_source: Callable[[SourceRef], None] | None = None,
    on_discovered: Callable[[Sequence[SourceRef]], None] | None = None,
) -> LoadResult:
    """Discover and read all inputs; the first article with an id wins, later ones fail.

    Args:
        inputs: file paths, folder paths and `http(s)://` URLs.
        exclude: glob patterns for folder entries to skip (see `discover`).
        policy: time and size limits and the addresses that may be fetched.
        on_source: called after each source has been read (e.g. to advance a progress bar).
        on_discovered: called once with all sources before reading (e.g. to size the bar).

    Returns:
        The articles, failures, skipped entries and failed origins.
    """
    refs, failures, skipped = discover(inputs, exclude)
    if on_discovered is not None:
        on_discovered(refs)
    articles: list[Article] = []
    first_origin: dict[str, str] = {}
    for ref in refs:
        for item in read_source(ref, policy=policy):
            if isinstance(item, Skipped):
                skipped.append(SourceFailure(origin=item.origin, reason=item.reason))
            elif isinstance(item, SourceFailure):
                failures.append(item)
            elif item.id in first_origin:
                reason = f"duplicate article id {item.id!r} (already read from {first_origin[item.id]})"
                failures.append(SourceFailure(origin=item.origin, reason=reason))
            else:
                first_origin[item.id] = item.origin
                articles.append(item)
        if on_source is not None:
            on_source(ref)
    return LoadResult(
        articles=articles,
        failures=failures,
        skipped=skipped,
        failed_origins={failure.origin for failure in failures},
    )
