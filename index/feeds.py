"""Parse news feeds and sitemaps (bytes in, typed entries out); nothing here touches the network.

`feed_kind` tells a feed or sitemap from anything else by its root element (an HTML page, a
JSON file): `<rss>` or RDF (RSS 1.0), Atom's `<feed>`, a sitemap's `<urlset>` or a sitemap
index's `<sitemapindex>`. `parse_feed` turns the document into `FeedEntry`s: each entry's
article URL with what the feed says about it (title, dates, author, summary), which fills the
gaps the article page leaves (`index.feed_reader`).

RSS and Atom are read by feedparser (it knows every dialect, the date formats and the HTML
sanitising of summaries); sitemaps by lxml with entities, DTDs and the network off. Both read
from memory: neither ever fetches anything itself (a feed given to feedparser as a string that
looks like a URL would be downloaded by it, so it only ever gets a file object).
"""

from __future__ import annotations

import hashlib
import io
import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urljoin
from xml.sax import SAXException

from lxml import etree

from articleqa.index.sources import canonical_url

FeedKind = Literal["rss", "atom", "sitemap", "sitemap-index"]

# Root element (local name, lower case) -> kind. RSS 1.0 is an RDF document.
_ROOTS: dict[str, FeedKind] = {
    "rss": "rss",
    "rdf": "rss",
    "feed": "atom",
    "urlset": "sitemap",
    "sitemapindex": "sitemap-index",
}
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
SNIFF_BYTES = 64 * 1024  # the root element starts within this (after a prolog, comments, a DTD)
SUMMARY_CHARS = 20_000  # a summary is a stand-in for an article, never a whole book


class FeedError(ValueError):
    """The document is not a feed or sitemap that can be read; the message says why."""


@dataclass(frozen=True)
class FeedEntry:
    """One article a feed or sitemap lists.

    Attributes:
        url: the article page (absolute, as the feed wrote it, resolved against the feed's URL).
        title: the entry's title (a news sitemap's `<news:title>`).
        published: when it was first published, in the time zone the feed wrote.
        updated: when it last changed (Atom `<updated>`, a sitemap's `<lastmod>`).
        author: the entry's author.
        summary: the entry's text (its content when the feed carries it, else its summary),
            as plain text.
        source: the publication: the feed's title, or a news sitemap's `<news:name>`.
    """

    url: str
    title: str | None = None
    published: datetime | None = None
    updated: datetime | None = None
    author: str | None = None
    summary: str | None = None
    source: str | None = None

    @property
    def published_date(self) -> date | None:
        """The publication date for the article: `published`, else `updated`."""
        when = self.published or self.updated
        return when.date() if when else None

    @property
    def fingerprint(self) -> str:
        """A hash of everything the feed says about the entry: when it changes, the article
        page is worth fetching again (the feed poller keeps it per entry)."""
        parts = [self.url, self.title, self.published, self.updated, self.author, self.summary, self.source]
        payload = "\x1f".join("" if part is None else str(part) for part in parts)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Feed:
    """A parsed feed or sitemap.

    Attributes:
        kind: what the document is.
        title: the feed's title (None for sitemaps).
        entries: the articles it lists, in document order, each URL once.
        sitemaps: for a sitemap index, the sitemaps it lists (to fetch in turn).
        problems: `(where, reason)` for each entry that could not be read (no link, say);
            the other entries are not affected.
    """

    kind: FeedKind
    title: str | None = None
    entries: tuple[FeedEntry, ...] = ()
    sitemaps: tuple[str, ...] = ()
    problems: tuple[tuple[str, str], ...] = field(default=())


def _safe_parser() -> etree.XMLParser:
    """lxml's parser with everything that reaches outside the document off (XXE, DTDs,
    the network) and its limits on (no `huge_tree`): a hostile sitemap is only a failure."""
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )


def _local(tag: object) -> str:
    """An element's name without its namespace, lower case ("" for comments and the like)."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1].lower()


def gunzip(data: bytes, limit: int) -> bytes:
    """A gzip-compressed document (`sitemap.xml.gz`), never inflating past `limit` bytes.

    Raises:
        FeedError: corrupt data, or over the limit (naming it).
    """
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decoder.decompress(data, limit + 1)
    except zlib.error as exc:
        raise FeedError(f"the compressed document is corrupt: {exc}") from None
    if len(out) > limit:
        raise FeedError(f"the document is over the limit of {limit} bytes when decompressed (ARTICLEQA_MAX_INPUT_MB)")
    return out


def _start(data: bytes) -> bytes:
    """The document without a UTF-8 byte order mark and leading whitespace, which many feeds
    carry although XML allows nothing before the `<?xml` declaration."""
    return data.removeprefix(UTF8_BOM).lstrip()


def feed_kind(data: bytes) -> FeedKind | None:
    """What `data` is by its root element: a feed or sitemap kind, else None (an HTML page,
    a JSON file, text that is not XML). Only the start of the document is parsed, so what
    follows the root's start tag (an HTML entity, a syntax error) does not matter here."""
    head = _start(data)
    if not head.startswith(b"<"):
        return None
    parser = etree.XMLPullParser(events=("start",), resolve_entities=False, no_network=True, load_dtd=False)
    try:
        for offset in range(0, min(len(head), SNIFF_BYTES), 512):
            parser.feed(head[offset : offset + 512])
            for _event, element in parser.read_events():
                return _ROOTS.get(_local(element.tag))
    except (etree.XMLSyntaxError, ValueError):
        return None
    return None


def parse_feed(data: bytes, *, base_url: str | None = None) -> Feed:
    """Parse an RSS, Atom or sitemap document.

    Args:
        data: the document (already decompressed).
        base_url: the URL it was fetched from: relative links are resolved against it.

    Returns:
        The feed's entries (or a sitemap index's sitemaps) and the entries that were unusable.

    Raises:
        FeedError: not a feed or sitemap, or not readable at all (naming the problem).
    """
    data = _start(data)
    kind = feed_kind(data)
    if kind is None:
        raise FeedError("not a news feed or sitemap (expected an <rss>, Atom <feed>, <urlset> or <sitemapindex>)")
    if kind in ("rss", "atom"):
        return _parse_syndication(data, kind, base_url)
    return _parse_sitemap(data, kind, base_url)


# ---- RSS and Atom -------------------------------------------------------------------------


def _parse_syndication(data: bytes, kind: FeedKind, base_url: str | None) -> Feed:
    import feedparser  # imported here: only runs that read a feed need it

    # The media type is known to be XML here (`feed_kind`); the charset comes from the document.
    headers = {"content-type": "application/xml", **({"content-location": base_url} if base_url else {})}
    parsed = feedparser.parse(io.BytesIO(data), response_headers=headers, sanitize_html=True)
    problem = parsed.get("bozo_exception")
    if isinstance(problem, SAXException) and not any(_entry_link(item, base_url) for item in parsed.entries):
        # Malformed XML: the lenient parser salvages what it can; a document it salvaged
        # nothing from is broken. (feedparser's other "bozo" notes, on encodings, are harmless.)
        raise FeedError(f"not a readable feed: {problem}")
    source = _clean(parsed.feed.get("title"))
    entries: list[FeedEntry] = []
    problems: list[tuple[str, str]] = []
    for n, item in enumerate(parsed.entries, start=1):
        title = _clean(_get(item, "title"))
        url = _entry_link(item, base_url)
        if not url:
            where = f"entry {n}" + (f" ({title!r})" if title else "")
            problems.append((where, "the entry has no link to an article page"))
            continue
        entries.append(
            FeedEntry(
                url=url,
                title=title,
                published=_entry_time(item, "published") or _entry_time(item, "created"),
                updated=_entry_time(item, "updated"),
                author=_clean(_get(item, "author")),
                summary=_entry_text(item),
                source=source,
            )
        )
    return Feed(kind=kind, title=source, entries=_unique(entries), problems=tuple(problems))


def _get(item: Any, key: str) -> Any:
    """An entry's own value: plain dict access, without feedparser's deprecated fallbacks
    (asking for `updated` would otherwise answer with `published`, and warn)."""
    return dict.get(item, key)


def _entry_link(item: Any, base_url: str | None) -> str | None:
    """The article page of an entry: its alternate link, else a permalink guid."""
    links = [link for link in _get(item, "links") or [] if link.get("rel", "alternate") == "alternate"]
    href = _get(item, "link") or (links[0].get("href") if links else None)
    if not href and _get(item, "guidislink"):
        href = _get(item, "id")
    if not href or not str(href).strip():
        return None
    href = str(href).strip()
    return urljoin(base_url, href) if base_url else href


def _entry_time(item: Any, name: str) -> datetime | None:
    """An entry's date as the feed wrote it (its own time zone), else feedparser's UTC reading."""
    raw = _get(item, name)
    if raw:
        when = parse_datetime(str(raw))
        if when is not None:
            return when
    parsed = _get(item, f"{name}_parsed")
    if parsed:
        try:
            return datetime(*parsed[:6], tzinfo=UTC)
        except (TypeError, ValueError):
            return None
    return None


def _entry_text(item: Any) -> str | None:
    """The entry's content (full text when the feed carries it), else its summary, as text."""
    for value in [part.get("value") for part in _get(item, "content") or []] + [_get(item, "summary")]:
        text = html_to_text(value)
        if text:
            return text[:SUMMARY_CHARS]
    return None


def html_to_text(value: object) -> str | None:
    """Plain text of an HTML fragment (feedparser has sanitised it), paragraphs kept apart."""
    if not isinstance(value, str) or not value.strip():
        return None
    if "<" not in value:
        return " ".join(value.split()) or None
    from lxml import html as lxml_html

    try:
        root = lxml_html.fragment_fromstring(value, create_parent="div")
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        return " ".join(value.split()) or None
    blocks = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr"}
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.lower() in blocks:
            element.tail = "\n" + (element.tail or "")
    lines = (" ".join(line.split()) for line in root.text_content().split("\n"))
    return "\n".join(line for line in lines if line) or None


# ---- sitemaps -----------------------------------------------------------------------------


def _parse_sitemap(data: bytes, kind: FeedKind, base_url: str | None) -> Feed:
    try:
        root = etree.fromstring(data, parser=_safe_parser())
    except etree.XMLSyntaxError as exc:
        raise FeedError(f"invalid sitemap XML: {exc}") from None
    child = "sitemap" if kind == "sitemap-index" else "url"
    entries: list[FeedEntry] = []
    sitemaps: list[str] = []
    problems: list[tuple[str, str]] = []
    for n, element in enumerate((e for e in root if _local(e.tag) == child), start=1):
        fields = _fields(element)
        loc = (fields.get("loc") or "").strip()
        if not loc:
            problems.append((f"<{child}> {n}", "no <loc> with a URL"))
            continue
        url = urljoin(base_url, loc) if base_url else loc
        if kind == "sitemap-index":
            if url not in sitemaps:
                sitemaps.append(url)
            continue
        entries.append(
            FeedEntry(
                url=url,
                title=_clean(fields.get("news:title")),
                published=parse_datetime(fields.get("news:publication_date")),
                updated=parse_datetime(fields.get("lastmod")),
                source=_clean(fields.get("news:name")),
            )
        )
    return Feed(kind=kind, entries=_unique(entries), sitemaps=tuple(sitemaps), problems=tuple(problems))


def _fields(element: Any) -> dict[str, str]:
    """The text of a `<url>`'s children by local name; Google News ones as `news:<name>`
    (`<news:news>` holds the title and date, `<news:publication>` the name)."""
    out: dict[str, str] = {}
    for sub in element.iter():
        name = _local(sub.tag)
        if sub is element or not name or name in out:
            continue
        inside_news = any(_local(parent.tag) == "news" for parent in sub.iterancestors())
        key = f"news:{name}" if inside_news else name
        if key not in out and sub.text and sub.text.strip():
            out[key] = sub.text.strip()
    return out


# ---- shared -------------------------------------------------------------------------------


def parse_datetime(value: str | None) -> datetime | None:
    """A feed date: ISO 8601 / W3C (Atom, sitemaps: "2024-05-02", "2024-05-02T10:00Z") or
    RFC 822 (RSS: "Thu, 02 May 2024 10:00:00 GMT"); None when missing or unreadable, since a
    bad date in a feed must not cost the article."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def _clean(value: object) -> str | None:
    """Feed text as one stripped line; None when blank."""
    if not isinstance(value, str):
        return None
    return " ".join(value.split()) or None


def _unique(entries: list[FeedEntry]) -> tuple[FeedEntry, ...]:
    """Each article URL once (the first entry wins): feeds repeat items across sections."""
    seen: set[str] = set()
    out: list[FeedEntry] = []
    for entry in entries:
        key = canonical_url(entry.url)
        if key not in seen:
            seen.add(key)
            out.append(entry)
    return tuple(out)
