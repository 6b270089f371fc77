"""Following feeds (issue 13): `index.watch.Poller`, `index.subscriptions`, `articleqa watch`.

The feeds and pages come from a real HTTP server (tests/test_feeds.py's `FeedSite`), which
counts requests per path, answers If-None-Match with 304 and can be told to be slow or to
answer 429 with a Retry-After; articles go into a real index with the bundled model.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from typer.testing import CliRunner

from articleqa.index import feed_reader, open_index
from articleqa.index.sources import FetchPolicy
from articleqa.index.subscriptions import SeenEntry, SubscriptionStore, now_utc
from articleqa.index.watch import HostPacer, Poller, index_into, parse_interval
from tests.test_feeds import FERRY, LIBRARY, MARKET, ORCHARD, RSS_TYPE, FeedSite, page, rss

LOCAL = FetchPolicy(timeout=3, allowed_networks=("127.0.0.1/32",))
LOCAL_ENV = {"ARTICLEQA_ALLOWED_NETWORKS": '["127.0.0.1/32"]', "ARTICLEQA_WATCH_HOST_DELAY": "0"}


@pytest.fixture
def news() -> Iterator[FeedSite]:
    site = FeedSite()
    site.put("/news/ferry", page("Ferry every forty minutes", FERRY, published="2024-05-01"))
    site.put("/news/library", page(None, LIBRARY))  # no title, no date: the feed's are used
    site.put("/news/market", page("Market moves to the harbour", MARKET, published="2024-05-03"))
    site.put("/news/orchard", page("Orchard replanted", ORCHARD, published="2024-04-30"))
    yield site
    site.close()


FERRY_ITEM = {"link": "/news/ferry", "title": "Ferry", "date": "Wed, 01 May 2024 09:00:00 GMT"}
LIBRARY_ITEM = {"link": "/news/library", "title": "Library reopens", "date": "Thu, 02 May 2024 10:00:00 +0200"}
MARKET_ITEM = {"link": "/news/market", "title": "Market", "date": "Fri, 03 May 2024 07:00:00 GMT"}
ORCHARD_ITEM = {"link": "/news/orchard", "title": "Orchard", "date": "Tue, 30 Apr 2024 18:00:00 GMT"}


def feed(site: FeedSite, path: str, items: list[dict]) -> str:
    site.put(path, rss(items), RSS_TYPE)
    return site.url(path)


def page_hits(site: FeedSite) -> dict[str, int]:
    return {path: n for path, n in site.hits.items() if path.startswith("/news/")}


@pytest.fixture
def subscriptions(tmp_path) -> Iterator[SubscriptionStore]:
    store = SubscriptionStore.in_folder(tmp_path / "index")
    yield store
    store.close()


@pytest.fixture
def poller(open_store, subscriptions, tmp_path) -> Iterator[Poller]:
    store = open_store(tmp_path / "index")
    made = Poller(subscriptions, index_into(store), policy=LOCAL, host_delay=0, every=60)
    made.store = store  # type: ignore[attr-defined]  # for the tests' look into the index
    yield made


# ---- pure parts ---------------------------------------------------------------------------


def test_intervals_are_read_and_bad_ones_named():
    assert [parse_interval(v) for v in ("30s", "15m", "1h", "1h30m", "90", "2d", "0.5m")] == [
        30,
        900,
        3600,
        5400,
        90,
        172800,
        30,
    ]
    for bad in ("soon", "15x", "0", "", "m15", "-5m"):
        with pytest.raises(ValueError) as caught:
            parse_interval(bad)
        assert (
            str(caught.value) == f"invalid interval {bad!r}: use a number with s, m, h or d, e.g. 30s, 15m, 1h or 1h30m"
        )


def test_subscriptions_are_kept_in_the_index_folder(tmp_path):
    store = SubscriptionStore.in_folder(tmp_path / "ix")
    assert store.add(
        ["https://News.example/rss.xml", "https://news.example:443/rss.xml#x", "https://b.example/s.xml"]
    ) == [
        "https://News.example/rss.xml",
        "https://b.example/s.xml",
    ]
    with pytest.raises(ValueError, match="'ftp://x.example/feed' is not a feed URL"):
        store.add(["ftp://x.example/feed"])
    store.record_entries("https://news.example/rss.xml", {"https://news.example/a": SeenEntry("f1", "a1")}, added=1)
    store.record_poll("https://news.example/rss.xml", error=None, validators=('"e1"', "Wed, 01 May 2024 08:00:00 GMT"))
    store.close()

    again = SubscriptionStore.in_folder(tmp_path / "ix")  # what another process (the web app) sees
    assert (tmp_path / "ix" / "subscriptions.sqlite").is_file()
    first, second = again.list()
    assert (first.url, first.etag, first.articles_added, first.last_error) == (
        "https://News.example/rss.xml",
        '"e1"',
        1,
        None,
    )
    assert first.last_poll_at is not None and now_utc() - first.last_poll_at < timedelta(minutes=1)
    assert again.seen("https://news.example/rss.xml") == {"https://news.example/a": SeenEntry("f1", "a1")}
    assert again.remove("https://news.example/rss.xml") and not again.remove("https://news.example/rss.xml")
    assert [s.url for s in again.list()] == [second.url]
    again.close()


def test_the_pacer_spaces_requests_to_one_host_and_honours_holds():
    pacer = HostPacer(0.2)
    starts = []
    for _ in range(3):
        with pacer.request("http://a.example/x"):
            starts.append(time.monotonic())
    with pacer.request("http://b.example/x"):  # another host: no wait
        other = time.monotonic()
    assert all(b - a >= 0.19 for a, b in zip(starts, starts[1:]))
    assert other - starts[-1] < 0.15
    pacer.hold("http://b.example/y", 0.3)
    started = time.monotonic()
    with pacer.request("http://b.example/z"):
        assert time.monotonic() - started >= 0.29
    with pytest.raises(ValueError, match="0 or more seconds, got -1"):
        HostPacer(-1)


# ---- polling ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.integration
def test_new_entries_are_indexed_unchanged_ones_not_fetched_changed_ones_updated(news, poller, subscriptions):
    url = feed(news, "/rss.xml", [FERRY_ITEM, LIBRARY_ITEM])
    subscriptions.add([url])
    [first] = poller.poll()
    assert (first.outcome, first.new, first.unchanged, first.failed) == ("new", 2, 0, ())
    assert first.line() == f"{url}: new: 2 new, 0 updated, 0 unchanged, 0 failed"
    store = poller.store
    library = next(a for a in store.articles.list() if a.origin == news.url("/news/library"))
    assert (library.title, library.published_at) == ("Library reopens", date(2024, 5, 2))  # from the feed
    hit = store.lexical.search("reading room renovation", k=1)[0]
    assert store.lexical.get([hit.chunk_id])[hit.chunk_id].article_id == library.id

    # A new entry: only its page is fetched.
    feed(news, "/rss.xml", [MARKET_ITEM, FERRY_ITEM, LIBRARY_ITEM])
    [second] = poller.poll()
    assert (second.new, second.updated, second.unchanged) == (1, 0, 2)
    assert page_hits(news) == {"/news/ferry": 1, "/news/library": 1, "/news/market": 1}

    # A changed entry (new title, changed page): fetched again and re-indexed as updated.
    news.put(
        "/news/ferry", page("Ferry every thirty minutes", FERRY.replace("forty", "thirty"), published="2024-05-01")
    )
    feed(news, "/rss.xml", [MARKET_ITEM, {**FERRY_ITEM, "title": "Ferry (updated)"}, LIBRARY_ITEM])
    [third] = poller.poll()
    assert (third.outcome, third.new, third.updated, third.unchanged) == ("updated", 0, 1, 2)
    assert page_hits(news)["/news/ferry"] == 2 and page_hits(news)["/news/market"] == 1
    assert {a.title for a in store.articles.list()} == {
        "Ferry every thirty minutes",
        "Library reopens",
        "Market moves to the harbour",
    }
    [sub] = subscriptions.list()
    assert (sub.articles_added, sub.articles_updated, sub.last_error, sub.failures) == (3, 1, None, 0)


@pytest.mark.slow
@pytest.mark.integration
def test_a_304_costs_no_parse_and_no_page_request(news, poller, subscriptions, monkeypatch):
    url = feed(news, "/rss.xml", [FERRY_ITEM])
    subscriptions.add([url])
    poller.poll()
    parsed = []
    real_parse = feed_reader.parse_feed
    monkeypatch.setattr(feed_reader, "parse_feed", lambda *a, **k: parsed.append(1) or real_parse(*a, **k))
    requests_before = len(news.log)
    [again] = poller.poll()
    assert again.not_modified and again.outcome == "unchanged"
    assert again.line() == f"{url}: unchanged (not modified since the last poll)"
    assert parsed == []
    [(path, headers, _)] = news.log[requests_before:]  # one request: the feed's, answered 304
    assert path == "/rss.xml" and headers["If-None-Match"].startswith('"')
    assert headers["If-Modified-Since"] == "Wed, 01 May 2024 08:00:00 GMT"
    assert headers["User-Agent"] == "articleqa/0.1"


@pytest.mark.slow
@pytest.mark.integration
def test_a_broken_or_slow_feed_is_named_and_the_others_go_on(news, poller, subscriptions):
    news.put("/broken.xml", "<rss><channel><item><title>cut off", RSS_TYPE)
    broken = news.url("/broken.xml")
    missing = news.url("/gone.xml")
    slow = feed(news, "/slow.xml", [ORCHARD_ITEM])
    news.delay["/slow.xml"] = 2.5  # longer than the fetch timeout
    good = feed(news, "/rss.xml", [FERRY_ITEM])
    subscriptions.add([broken, missing, slow, good])
    poller.policy = FetchPolicy(timeout=1, allowed_networks=("127.0.0.1/32",))
    results = {r.url: r for r in poller.poll()}
    assert results[slow].seconds < 1.8  # the slow feed cost its own timeout, no more
    assert results[broken].outcome == "failed" and results[broken].error.startswith("not a readable feed")
    assert results[missing].line().startswith(f"{missing}: failed: HTTP 404 Not Found; next try after ")
    assert results[slow].error == "timed out after 1s (the limit set by ARTICLEQA_FETCH_TIMEOUT)"
    assert results[good].outcome == "new" and results[good].new == 1
    by_url = {s.url: s for s in subscriptions.list()}
    assert by_url[missing].failures == 1 and by_url[missing].last_error == "HTTP 404 Not Found"
    # Backing off: the next poll leaves the failing feeds alone and polls the good one.
    retry = {r.url: r for r in poller.poll()}
    assert retry[missing].outcome == "waiting" and news.hits["/gone.xml"] == 1
    assert retry[good].not_modified


@pytest.mark.slow
@pytest.mark.integration
def test_a_slow_site_does_not_hold_up_feeds_on_other_hosts(news, poller, subscriptions):
    """Hosts are polled in parallel: a site that takes 2.5 s per answer (within the timeout)
    delays its own feed only; the other host's feed is read and indexed meanwhile."""
    slow_site = FeedSite()
    try:
        slow_site.put("/news/orchard", page("Orchard replanted", ORCHARD, published="2024-04-30"))
        slow = feed(slow_site, "/rss.xml", [ORCHARD_ITEM])
        slow_site.delay["/rss.xml"] = 2.5
        fast = feed(news, "/rss.xml", [FERRY_ITEM])
        subscriptions.add([slow, fast])  # the slow one first: sequential polling would wait for it
        started = time.monotonic()
        finished: list[tuple[str, float]] = []
        results = poller.poll(lambda r: finished.append((r.url, time.monotonic() - started)))
        assert [r.url for r in results] == [slow, fast], "results keep the subscriptions' order"
        assert [url for url, _ in finished] == [fast, slow], "the fast host's feed is done first"
        assert finished[0][1] < 2.5, "it did not wait for the slow host"
        assert all(r.outcome == "new" and r.new == 1 for r in results)
    finally:
        slow_site.close()


@pytest.mark.slow
@pytest.mark.integration
def test_429_with_retry_after_holds_the_host_and_the_page_is_read_next_poll(news, poller, subscriptions):
    url = feed(news, "/rss.xml", [FERRY_ITEM, LIBRARY_ITEM])
    news.once["/news/ferry"] = [(429, {"Retry-After": "1"})]
    subscriptions.add([url])
    [first] = poller.poll()
    assert (first.new, [f.reason for f in first.failed]) == (1, ["HTTP 429 Too Many Requests"])
    times = {path: at for path, _, at in news.log}
    assert times["/news/library"] - times["/news/ferry"] >= 0.95  # the next request waited
    [sub] = subscriptions.list()
    assert sub.etag is None  # incomplete: the whole feed is read again next time
    [second] = poller.poll()
    assert (second.new, second.unchanged, second.failed) == (1, 1, ())
    assert page_hits(news) == {"/news/ferry": 2, "/news/library": 1}


@pytest.mark.slow
@pytest.mark.integration
def test_a_page_that_is_gone_is_not_fetched_again_until_its_entry_changes(news, poller, subscriptions):
    url = feed(news, "/rss.xml", [FERRY_ITEM, {"link": "/news/gone", "title": "Gone"}])
    subscriptions.add([url])
    [first] = poller.poll()
    assert first.line().endswith(
        f"1 new, 0 updated, 0 unchanged, 1 failed (first: {news.url('/news/gone')}: HTTP 404 Not Found)"
    )
    assert subscriptions.list()[0].last_error.startswith("1 failed; first: ")
    feed(news, "/rss.xml", [MARKET_ITEM, FERRY_ITEM, {"link": "/news/gone", "title": "Gone"}])
    [second] = poller.poll()
    assert (second.new, second.unchanged, second.failed) == (1, 2, ())
    assert news.hits["/news/gone"] == 1


@pytest.mark.slow
@pytest.mark.integration
def test_stop_ends_the_watch_between_polls(news, poller, subscriptions):
    subscriptions.add([feed(news, "/rss.xml", [ORCHARD_ITEM])])
    lines = []
    runner = threading.Thread(target=poller.run, args=(lambda r: lines.append(r.line()),))
    runner.start()
    deadline = time.monotonic() + 60
    while not lines and time.monotonic() < deadline:
        time.sleep(0.05)
    poller.stop.set()
    runner.join(timeout=2)
    assert not runner.is_alive() and len(lines) == 1


# ---- the command --------------------------------------------------------------------------


def test_a_bad_every_is_a_usage_error_naming_the_value(tmp_path):
    from articleqa.ui.cli import app

    result = CliRunner().invoke(
        app, ["watch", "https://x.example/rss", "--every", "soon", "--index-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "--every: invalid interval 'soon': use a number with s, m, h or d, e.g. 30s, 15m, 1h" in result.output
    assert not (tmp_path / "subscriptions.sqlite").exists()


@pytest.mark.slow
@pytest.mark.integration
def test_articleqa_watch_once_then_the_stored_subscriptions(news, tmp_path):
    from articleqa.ui.cli import app

    url = feed(news, "/rss.xml", [FERRY_ITEM, LIBRARY_ITEM])
    index_dir = str(tmp_path / "ix")
    cli = CliRunner()
    first = cli.invoke(app, ["watch", url, "--once", "--index-dir", index_dir], env=LOCAL_ENV)
    assert first.exit_code == 0, first.output
    assert f"following {url}" in first.output
    assert f"{url}: new: 2 new, 0 updated, 0 unchanged, 0 failed" in first.output
    again = cli.invoke(app, ["watch", "--once", "--index-dir", index_dir], env=LOCAL_ENV)  # no SOURCE: the stored ones
    assert again.exit_code == 0 and f"{url}: unchanged (not modified since the last poll)" in again.output
    listed = cli.invoke(app, ["watch", "--list", "--index-dir", index_dir], env={"COLUMNS": "300"})
    assert url in listed.output and "never" not in listed.output
    store = open_index(index_dir)
    try:
        assert store.articles.count() == 2
    finally:
        store.close()
    gone = cli.invoke(app, ["watch", "--remove", url, "--index-dir", index_dir])
    assert gone.exit_code == 0 and f"stopped following {url}" in gone.output
    nothing = cli.invoke(app, ["watch", "--once", "--index-dir", index_dir])
    assert nothing.exit_code == 2 and "no feeds to watch" in nothing.output


@pytest.mark.integration
def test_ctrl_c_stops_the_watch_with_exit_code_130(news, tmp_path):
    url = feed(news, "/rss.xml", [])  # nothing to index: the poll line comes without loading the model
    proc = subprocess.Popen(
        [sys.executable, "-m", "articleqa.ui.cli", "watch", url, "--every", "1h", "--index-dir", str(tmp_path / "ix")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **LOCAL_ENV, "COLUMNS": "300"},
    )
    line = proc.stdout.readline()  # the first poll's line; then it waits an hour
    assert f"{url}: unchanged: 0 new, 0 updated, 0 unchanged, 0 failed" in line
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "interrupted; the index is consistent" in stderr


# ---- the web app --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.integration
def test_the_web_app_follows_feeds_and_polls_them_beside_the_chat(news, tmp_path, embeddings):
    from articleqa.ui.app import follow_feed, unfollow_feed
    from articleqa.ui.library import Library

    url = feed(news, "/rss.xml", [FERRY_ITEM, LIBRARY_ITEM])
    lib = Library(tmp_path / "ix", fetch=LOCAL)
    try:
        note, box, rows = follow_feed(lib, url)
        assert note.startswith(f"Following `{url}`. It is polled by `articleqa watch`") and box == ""
        assert rows == [[url, "not yet", "", "0", "0"]]
        assert follow_feed(lib, url)[0].startswith(f"Already following `{url}`")
        polls = []
        lib.start_watching(3600, host_delay=0, on_poll=polls.append)
        deadline = time.monotonic() + 60
        while not polls and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p.line() for p in polls] == [f"{url}: new: 2 new, 0 updated, 0 unchanged, 0 failed"]
        [row] = lib.subscription_rows()
        assert row[0] == url and row[1].endswith(" UTC") and row[2:] == ["", "2", "0"]
        answer = lib.qa().ask("How often will the island ferry sail?")
        assert answer.citations and answer.citations[0].url == news.url("/news/ferry")
        # The list is the one `articleqa watch` polls.
        assert [s.url for s in SubscriptionStore.in_folder(tmp_path / "ix").list()] == [url]
        assert unfollow_feed(lib, url)[2] == []
        started = time.monotonic()
        lib.stop_watching()
        assert not lib.watching and time.monotonic() - started < 2  # it was waiting: stops at once
    finally:
        lib.close()


@pytest.mark.slow
@pytest.mark.integration
def test_serve_watch_polls_in_the_background_and_stops_with_the_server(news, tmp_path, embeddings):
    from articleqa.ui.app import serve

    url = feed(news, "/rss.xml", [MARKET_ITEM])
    SubscriptionStore.in_folder(tmp_path / "ix").add([url])  # as `articleqa watch URL` leaves it
    polls = []
    app = serve(
        tmp_path / "ix",
        port=free_port(),
        fetch=LOCAL,
        watch_every=3600,
        host_delay=0,
        on_poll=polls.append,
        prevent_thread_lock=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not polls and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p.outcome for p in polls] == ["new"] and app.library.watching
    finally:
        app.close()
        app.library.close()
    assert not app.library.watching
    assert app.library.subscription_rows()[0][3] == "1"
