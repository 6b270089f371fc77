"""News feeds and sitemaps as inputs (issue 13): RSS, Atom, sitemaps and sitemap indexes.

A real HTTP server on 127.0.0.1 (`FeedSite`) serves the feeds and the article pages, counts
the requests per path and answers conditional requests with 304; tests/test_watch.py uses it
too. Parsing is checked on bytes; reading end to end through `load_articles` and `articleqa
index`, whose articles are then found in the index.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from articleqa.index import load_articles, open_index
from articleqa.index.feeds import FeedError, feed_kind, parse_feed
from articleqa.index.fetch import parse_retry_after
from articleqa.index.sources import FetchPolicy

LOCAL = FetchPolicy(timeout=3, allowed_networks=("127.0.0.1/32",))


# ---- the site -----------------------------------------------------------------------------


def page(title: str | None, body: str, *, published: str | None = None, author: str | None = None) -> bytes:
    """An article page; without `title` it has neither <title> nor <h1>, without `published`
    no date in its markup: the feed has to fill them in."""
    head = f"<title>{title}</title>" if title else ""
    if published:
        head += f'<meta property="article:published_time" content="{published}">'
    if author:
        head += f'<meta name="author" content="{author}">'
    h1 = f"<h1>{title}</h1>" if title else ""
    paragraphs = "".join(f"<p>{p}</p>" for p in body.split("\n"))
    html = f'<!doctype html><html><head><meta charset="utf-8">{head}</head><body><article>{h1}{paragraphs}</article></body></html>'
    return html.encode("utf-8")


class FeedSite:
    """Feeds, sitemaps and pages on a real local server.

    `docs[path] = (content type, body)` may be changed between requests. Every response
    carries an ETag (a hash of the body) and a fixed Last-Modified; a request whose
    If-None-Match matches gets 304. `once[path]` queues one-off answers (status, headers);
    `delay[path]` sleeps before answering. `hits` counts requests per path, `log` keeps
    `(path, headers, time)` of each.
    """

    def __init__(self) -> None:
        self.docs: dict[str, tuple[str, bytes]] = {}
        self.once: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.delay: dict[str, float] = {}
        self.hits: Counter[str] = Counter()
        self.log: list[tuple[str, dict[str, str], float]] = []
        self.lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                path = self.path
                with site.lock:
                    site.hits[path] += 1
                    site.log.append((path, dict(self.headers), time.monotonic()))
                    queued = site.once.get(path)
                    answer = queued.pop(0) if queued else None
                    doc = site.docs.get(path)
                if path in site.delay:
                    time.sleep(site.delay[path])
                try:
                    if answer is not None:
                        self._send(answer[0], b"busy", "text/plain", answer[1])
                    elif doc is None:
                        self._send(404, b"<html><body>Not here</body></html>", "text/html")
                    else:
                        kind, body = doc
                        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
                        validators = {"ETag": etag, "Last-Modified": "Wed, 01 May 2024 08:00:00 GMT"}
                        if self.headers.get("If-None-Match") == etag:
                            self._send(304, b"", None, validators)
                        else:
                            self._send(200, body, kind, validators)
                except OSError:  # the client gave up (its deadline): expected in the slow tests
                    pass

            def _send(self, status: int, body: bytes, kind: str | None, headers: dict | None = None) -> None:
                self.send_response(status)
                if kind:
                    self.send_header("Content-Type", kind)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str) -> str:
        return self.base + path

    def put(self, path: str, body: bytes | str, kind: str = "text/html; charset=utf-8") -> None:
        with self.lock:
            self.docs[path] = (kind, body.encode("utf-8") if isinstance(body, str) else body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[FeedSite]:
    served = FeedSite()
    yield served
    served.close()


def rss(items: list[dict], title: str = "The Harbour Gazette") -> str:
    """An RSS 2.0 feed; each item: link, and optionally title, date (RFC 822), author, summary."""
    parts = []
    for item in items:
        fields = f"<link>{item['link']}</link>" if "link" in item else ""
        if "title" in item:
            fields += f"<title>{item['title']}</title>"
        if "date" in item:
            fields += f"<pubDate>{item['date']}</pubDate>"
        if "author" in item:
            fields += f"<dc:creator>{item['author']}</dc:creator>"
        if "summary" in item:
            fields += f"<description><![CDATA[{item['summary']}]]></description>"
        parts.append(f"<item>{fields}</item>")
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>{title}</title><link>http://example.org/</link>{''.join(parts)}</channel></rss>"
    )


def atom(entries: list[dict], title: str = "Valley Times") -> str:
    parts = []
    for e in entries:
        parts.append(
            f'<entry><title>{e["title"]}</title><link href="{e["link"]}"/><id>{e["link"]}</id>'
            f"<updated>{e['updated']}</updated><author><name>{e.get('author', 'Desk')}</name></author></entry>"
        )
    return f'<feed xmlns="http://www.w3.org/2005/Atom"><title>{title}</title>{"".join(parts)}</feed>'


SITEMAP_NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
NEWS_NS = 'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9"'


def sitemap(urls: list[dict]) -> str:
    """A (Google News) sitemap; each url: loc, and optionally lastmod, title, date, name."""
    parts = []
    for u in urls:
        inner = f"<loc>{u['loc']}</loc>" if "loc" in u else ""
        if "lastmod" in u:
            inner += f"<lastmod>{u['lastmod']}</lastmod>"
        if "title" in u:
            inner += (
                f"<news:news><news:publication><news:name>{u.get('name', 'Coast News')}</news:name>"
                "<news:language>en</news:language></news:publication>"
                f"<news:publication_date>{u['date']}</news:publication_date><news:title>{u['title']}</news:title>"
                "</news:news>"
            )
        parts.append(f"<url>{inner}</url>")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {SITEMAP_NS} {NEWS_NS}>{"".join(parts)}</urlset>'


def sitemap_index(locs: list[str]) -> str:
    inner = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex {SITEMAP_NS}>{inner}</sitemapindex>'


FERRY = "The island ferry will sail every forty minutes from Monday, the operator said.\nExtra evening crossings were added after a petition signed by 2,300 residents."
LIBRARY = "The city library reopened its reading room after a year of renovation work.\nVisitors can borrow e-readers, and the opening hours now run until nine in the evening."
MARKET = "The Saturday market moves to the harbour square for the summer, the council decided.\nThirty-two stalls have signed up, twelve more than last year."
ORCHARD = "An orchard on the eastern hill was replanted with 400 apple trees by volunteers.\nThe first harvest is expected in three years, the growers association said."

RSS_TYPE = "application/rss+xml; charset=utf-8"


# ---- parsing ------------------------------------------------------------------------------


def test_feeds_are_told_from_pages_by_their_root_element():
    assert feed_kind(rss([]).encode()) == "rss"
    assert feed_kind(atom([]).encode()) == "atom"
    assert feed_kind(b"\xef\xbb\xbf\n  " + sitemap([]).encode()) == "sitemap"  # BOM and blanks first: still read
    assert feed_kind(sitemap_index([]).encode()) == "sitemap-index"
    rdf = b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"/>'
    assert feed_kind(rdf) == "rss"
    assert feed_kind(page("Ferry", FERRY)) is None
    assert feed_kind(b'{"title": "json"}') is None
    assert feed_kind(b"<html><body>&nbsp; not XML at all <br></body>") is None
    with pytest.raises(FeedError, match="not a news feed or sitemap"):
        parse_feed(page("Ferry", FERRY))


def test_rss_entries_carry_the_feed_metadata_and_resolve_relative_links():
    feed = parse_feed(
        rss(
            [
                {
                    "link": "/news/ferry",
                    "title": "Ferry &amp; bus timetable",
                    "date": "Thu, 02 May 2024 23:30:00 -0500",
                    "author": "Ines Moreau",
                    "summary": "<p>Every <b>forty</b> minutes.</p><p>From Monday.</p>",
                },
                {"title": "An entry without a link"},
                {"link": "http://example.org/news/ferry"},  # the same article again
            ]
        ).encode(),
        base_url="http://example.org/feeds/all.xml",
    )
    assert feed.kind == "rss" and feed.title == "The Harbour Gazette"
    [entry] = feed.entries
    assert entry.url == "http://example.org/news/ferry"
    assert entry.title == "Ferry & bus timetable"
    assert entry.published_date == date(2024, 5, 2)  # the feed's own day, not UTC's (May 3)
    assert entry.author == "Ines Moreau"
    assert entry.summary == "Every forty minutes.\nFrom Monday."
    assert entry.source == "The Harbour Gazette"
    assert feed.problems == (("entry 2 ('An entry without a link')", "the entry has no link to an article page"),)


def test_atom_and_news_sitemap_entries():
    feed = parse_feed(
        atom(
            [
                {
                    "title": "Orchard replanted",
                    "link": "https://valley.example/orchard",
                    "updated": "2024-04-30T18:00:00+02:00",
                }
            ]
        ).encode()
    )
    [entry] = feed.entries
    assert (entry.url, entry.title, entry.author, entry.published_date) == (
        "https://valley.example/orchard",
        "Orchard replanted",
        "Desk",
        date(2024, 4, 30),
    )
    news = parse_feed(
        sitemap(
            [
                {
                    "loc": "https://coast.example/market",
                    "lastmod": "2024-05-04",
                    "title": "Market moves",
                    "date": "2024-05-03T07:00:00Z",
                },
                {"loc": "/library"},
                {},
            ]
        ).encode(),
        base_url="https://coast.example/sitemap.xml",
    )
    market, library = news.entries
    assert (market.title, market.source, market.published_date) == ("Market moves", "Coast News", date(2024, 5, 3))
    assert library.url == "https://coast.example/library" and library.published_date is None
    assert news.problems == (("<url> 3", "no <loc> with a URL"),)
    index = parse_feed(
        sitemap_index(["https://coast.example/a.xml", "/b.xml"]).encode(), base_url="https://coast.example/"
    )
    assert index.kind == "sitemap-index" and index.sitemaps == (
        "https://coast.example/a.xml",
        "https://coast.example/b.xml",
    )


def test_a_changed_entry_changes_its_fingerprint():
    one = parse_feed(
        rss([{"link": "http://x.example/a", "title": "A", "date": "Thu, 02 May 2024 10:00:00 GMT"}]).encode()
    )
    same = parse_feed(
        rss([{"link": "http://x.example/a", "title": "A", "date": "Thu, 02 May 2024 10:00:00 GMT"}]).encode()
    )
    later = parse_feed(
        rss([{"link": "http://x.example/a", "title": "A (updated)", "date": "Thu, 02 May 2024 10:00:00 GMT"}]).encode()
    )
    assert one.entries[0].fingerprint == same.entries[0].fingerprint != later.entries[0].fingerprint


def test_hostile_xml_reads_no_file_and_expands_no_entity(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET", encoding="utf-8")
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY x SYSTEM "file://{secret}">]>'
        f"<urlset {SITEMAP_NS}><url><loc>http://x.example/&x;</loc></url></urlset>"
    ).encode()
    feed = parse_feed(xxe)
    assert "TOP-SECRET" not in repr(feed)
    entities = '<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8)
    )
    laughs = f'<?xml version="1.0"?><!DOCTYPE rss [{entities}]><rss><channel><item><title>&i;</title><link>http://x.example/</link></item></channel></rss>'
    started = time.monotonic()
    with pytest.raises(FeedError):
        parse_feed(laughs.encode())
    assert time.monotonic() - started < 2


# ---- reading: feeds as inputs -------------------------------------------------------------


def publish(site: FeedSite) -> None:
    """Four articles and the documents that list them: an RSS feed (one entry broken), an Atom
    feed, a news sitemap, and a sitemap index over a (gzipped) sitemap and a nested index."""
    site.put("/news/ferry", page("Ferry every forty minutes", FERRY, published="2024-05-01", author="Ines Moreau"))
    site.put("/news/library", page(None, LIBRARY))  # no title, no date: the feed gives them
    site.put("/news/market", page("Market moves to the harbour", MARKET))
    site.put("/news/orchard", page("Orchard replanted", ORCHARD, published="2024-04-30"))
    site.put(
        "/feeds/rss.xml",
        rss(
            [
                {"link": site.url("/news/ferry"), "title": "Ferry", "date": "Wed, 01 May 2024 09:00:00 GMT"},
                {
                    "link": "/news/library",
                    "title": "Library reading room reopens",
                    "date": "Thu, 02 May 2024 10:00:00 +0200",
                    "author": "Tom Berg",
                },
                {"link": "/news/gone", "title": "Deleted story"},
            ]
        ),
        RSS_TYPE,
    )
    site.put(
        "/feeds/atom.xml",
        atom([{"title": "Orchard", "link": site.url("/news/orchard"), "updated": "2024-04-30T18:00:00Z"}]),
        "application/atom+xml",
    )
    site.put(
        "/news-sitemap.xml",
        sitemap([{"loc": site.url("/news/market"), "title": "Market moves", "date": "2024-05-03T07:00:00Z"}]),
        "text/xml",  # served as a generic XML type: recognised by its root element
    )
    site.put(
        "/sitemaps/orchard.xml.gz",
        gzip.compress(sitemap([{"loc": site.url("/news/orchard")}]).encode()),
        "application/x-gzip",
    )
    site.put("/sitemaps/nested.xml", sitemap_index(["/news-sitemap.xml", "/sitemaps/missing.xml"]), "application/xml")
    site.put(
        "/sitemap_index.xml", sitemap_index(["/sitemaps/orchard.xml.gz", "/sitemaps/nested.xml"]), "application/xml"
    )


def reasons(failures) -> dict[str, str]:
    return {f.origin: f.reason for f in failures}


@pytest.mark.integration
def test_a_feed_url_stands_for_its_articles_and_fills_the_gaps_of_their_pages(site):
    publish(site)
    result = load_articles([site.url("/feeds/rss.xml")], policy=LOCAL)
    ferry, library = result.articles
    assert ferry.origin == site.url("/news/ferry") and ferry.title == "Ferry every forty minutes"
    assert ferry.published_at == date(2024, 5, 1) and ferry.author == "Ines Moreau"  # the page's own
    assert library.title == "Library reading room reopens"  # the page has none: the feed's
    assert library.published_at == date(2024, 5, 2) and library.author == "Tom Berg"
    assert library.source == "The Harbour Gazette"
    assert "reading room after a year of renovation" in library.text
    # The broken entry is one failure, named by its URL; the others were read.
    assert reasons(result.failures) == {site.url("/news/gone"): "HTTP 404 Not Found"}
    assert all(headers["User-Agent"] == "articleqa/0.1" for _, headers, _ in site.log)


@pytest.mark.integration
def test_sitemap_indexes_are_followed_and_atom_feeds_read(site):
    publish(site)
    result = load_articles([site.url("/sitemap_index.xml"), site.url("/feeds/atom.xml")], policy=LOCAL)
    by_origin = {a.origin: a for a in result.articles}
    assert set(by_origin) == {site.url("/news/orchard"), site.url("/news/market")}
    assert by_origin[site.url("/news/market")].published_at == date(2024, 5, 3)  # from <news:news>
    # The Atom feed lists the orchard again: the same article id, a duplicate, as for two URLs.
    assert reasons(result.failures) == {
        site.url("/sitemaps/missing.xml"): "HTTP 404 Not Found",
        site.url("/news/orchard"): f"duplicate article id '{by_origin[site.url('/news/orchard')].id}' "
        f"(already read from {site.url('/news/orchard')})",
    }
    assert site.hits["/news/orchard"] == 2 and site.hits["/news-sitemap.xml"] == 1


@pytest.mark.integration
def test_sitemap_indexes_stop_at_the_depth_limit(site, monkeypatch):
    from articleqa.index import feed_reader

    monkeypatch.setattr(feed_reader, "MAX_SITEMAP_DEPTH", 1)
    publish(site)
    result = load_articles([site.url("/sitemap_index.xml")], policy=LOCAL)
    assert [a.origin for a in result.articles] == [site.url("/news/orchard")]
    deeper = "sitemap nested deeper than 1 levels"
    assert reasons(result.skipped) == {site.url("/news-sitemap.xml"): deeper, site.url("/sitemaps/missing.xml"): deeper}
    assert site.hits["/news-sitemap.xml"] == 0 and site.hits["/sitemaps/nested.xml"] == 1


@pytest.mark.integration
def test_a_feed_file_is_read_when_named_and_a_broken_feed_is_named(site, tmp_path):
    publish(site)
    feed_file = tmp_path / "gazette.rss"
    feed_file.write_text(
        rss([{"link": site.url("/news/market"), "title": "Market", "date": "Fri, 03 May 2024 07:00:00 GMT"}])
    )
    site.put("/feeds/broken.xml", "<rss><channel><item><title>cut off", RSS_TYPE)
    site.put("/feeds/not-a-feed.xml", "<catalog><book/></catalog>", "application/xml")
    result = load_articles([feed_file, site.url("/feeds/broken.xml"), site.url("/feeds/not-a-feed.xml")], policy=LOCAL)
    [market] = result.articles
    assert market.origin == site.url("/news/market") and market.published_at == date(2024, 5, 3)
    got = reasons(result.failures)
    assert got[site.url("/feeds/broken.xml")].startswith("not a readable feed")
    assert got[site.url("/feeds/not-a-feed.xml")].startswith(
        "the application/xml document is not a news feed or sitemap"
    )
    # A feed file found while walking a folder is not read: it would start downloads.
    assert load_articles([tmp_path]).skipped[0].reason.startswith("unsupported extension '.rss'")


@pytest.mark.slow
@pytest.mark.integration
def test_articleqa_index_takes_feed_urls_and_the_articles_are_found(site, tmp_path):
    from articleqa.ui.cli import app

    publish(site)
    index_dir = tmp_path / "ix"
    result = CliRunner().invoke(
        app,
        ["index", site.url("/feeds/rss.xml"), site.url("/news-sitemap.xml"), "--index-dir", str(index_dir), "-q"],
        env={"ARTICLEQA_ALLOWED_NETWORKS": '["127.0.0.1/32"]'},
    )
    assert result.exit_code == 1, result.output  # the feed's broken entry
    assert f"failed {site.url('/news/gone')}: HTTP 404 Not Found" in result.output
    store = open_index(index_dir)
    try:
        titles = {a.title for a in store.articles.list()}
        assert titles == {"Ferry every forty minutes", "Library reading room reopens", "Market moves to the harbour"}
        hit = store.lexical.search("renovation reading room", k=1)[0]
        library = store.lexical.get([hit.chunk_id])[hit.chunk_id].article_id
        assert store.articles.get(library).published_at == date(2024, 5, 2)
    finally:
        store.close()


def test_retry_after_is_read_as_seconds_or_an_http_date():
    now = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(formatdate((now + timedelta(seconds=90)).timestamp(), usegmt=True), now) == 90
    assert parse_retry_after("Wed, 01 May 2024 07:00:00 GMT", now) == 0  # in the past
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None
