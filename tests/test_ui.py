"""The web chat, end to end: the real app on 127.0.0.1, the real index and model, the
`/ask` endpoint through gradio_client, and the page driven in Debian's Chromium by Playwright.

Screenshots of each step go to test-artifacts/ui/ (git-ignored). Chromium and Playwright are
required: CI installs them; without them these tests fail with a message saying so.
"""

from __future__ import annotations

import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, SEED_ID, WASTE_SENTENCE

pytestmark = [pytest.mark.slow, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = ROOT / "test-artifacts" / "ui"
QUESTION = "Who called the meeting a waste of time?"
FIRST_ANSWER_MS = 240_000  # the first answer loads the model and warms up the stores
ANSWER_MS = 90_000
INDEX_MS = 180_000

BRIDGE_TITLE = "Zorvath Bridge reopens after repairs"
BRIDGE_FACT = "The Zorvath Bridge in Kelmora reopened on Tuesday after 14 months of repairs costing 9.7 million euros."
BRIDGE_TEXT = (
    f"{BRIDGE_TITLE}\n"
    f"{BRIDGE_FACT} The city council said the old steel deck had been replaced and two new "
    "cycle lanes added. Traffic on the river crossing is expected to return to normal by the "
    "end of the month.\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(index_dir: Path):
    from articleqa.ui.app import serve

    port = free_port()
    app = serve(index_dir, host="127.0.0.1", port=port, prevent_thread_lock=True)
    return app, f"http://127.0.0.1:{port}/"


def stop_app(app) -> None:
    app.close()
    app.library.close()


@pytest.fixture(scope="module")
def ui_index(example_index, tmp_path_factory) -> Path:
    """A private copy of the example index: the upload tests write to it."""
    target = tmp_path_factory.mktemp("ui") / "index"
    shutil.copytree(example_index, target)
    return target


@pytest.fixture(scope="module")
def app(ui_index) -> Iterator[tuple[object, str]]:
    started, url = start_app(ui_index)
    yield started, url
    stop_app(started)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright; fails (never skips) when either is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"Playwright is not installed ({exc}): pip install playwright (CI installs it)")
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium (CI installs it)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    failures_before = request.session.testsfailed
    outside: list[str] = []
    opened.on(
        "request",
        lambda r: outside.append(r.url) if not re.match(r"^(https?://127\.0\.0\.1[:/]|data:|blob:)", r.url) else None,
    )
    yield opened
    if request.session.testsfailed > failures_before:  # keep what the page showed
        shot(opened, f"FAILED-{request.node.name}")
    context.close()
    assert not outside, f"the page fetched something outside 127.0.0.1: {outside}"


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def ask_in_chat(page, question: str) -> None:
    box = page.locator("#aqa-question textarea")
    box.fill(question)
    page.locator("#aqa-ask").click()


def upload(page, files: list[Path]) -> None:
    page.get_by_role("tab", name="Articles").click()
    page.locator("#aqa-upload input[type=file]").set_input_files([str(f) for f in files])
    for f in files:  # uploaded to the server and listed before indexing
        page.locator(f'#aqa-upload td.filename[aria-label="{f.name}"]').wait_for(timeout=30_000)
    page.locator("#aqa-index").click()


def read_article_text(index_dir: Path, article_id: str) -> str:
    from articleqa.index.articles import ArticleStore

    store = ArticleStore(index_dir / "articles.sqlite")
    try:
        article = store.get(article_id)
    finally:
        store.close()
    assert article is not None, f"{article_id} is not in {index_dir}"
    return article.text


# ---- the /ask API ---------------------------------------------------------------------------


def test_ask_endpoint_quotes_and_cites(app, ui_index):
    from gradio_client import Client

    _, url = app
    client = Client(url, verbose=False)
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {"/ask"}

    answer = client.predict(QUESTION, api_name="/ask")

    assert answer["grounded"] is True
    first = next(c for c in answer["citations"] if c["article_id"] == SEED_ID)
    assert f"[{first['n']}]" in answer["text"]
    assert first["quote"] == WASTE_SENTENCE
    text = read_article_text(ui_index, SEED_ID)
    assert text[first["start"] : first["end"]] == first["quote"]
    passage = first["passage"]
    assert passage[first["start"] - first["passage_start"] : first["end"] - first["passage_start"]] == WASTE_SENTENCE


def test_ask_endpoint_filters_and_errors(app):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    _, url = app
    client = Client(url, verbose=False)
    # Only Wikinews articles: the RT article cannot be cited.
    answer = client.predict(QUESTION, 6, ["Wikinews"], "", "", api_name="/ask")
    assert all(c["article_id"] != SEED_ID for c in answer["citations"] + answer["related"])

    with pytest.raises(
        AppError, match=re.escape("The \"after\" date '2019-13-01' is not a valid date: use YYYY-MM-DD")
    ):
        client.predict(QUESTION, 6, [], "2019-13-01", "", api_name="/ask")
    with pytest.raises(AppError, match="the date range is empty: after=2020-01-01 is later than before=2019-01-01"):
        client.predict(QUESTION, 6, [], "2020-01-01", "2019-01-01", api_name="/ask")
    with pytest.raises(AppError, match="The question is empty"):
        client.predict("   ", api_name="/ask")


# ---- the page -----------------------------------------------------------------------------


def test_chat_cites_highlights_and_answers_from_an_upload(app, page, tmp_path):
    from playwright.sync_api import expect

    _, url = app
    page.goto(url)
    page.locator("#aqa-question textarea").wait_for(timeout=60_000)
    expect(page.locator("#aqa-empty-notice")).to_be_hidden()
    shot(page, "01-chat-start")

    # A bad date is refused with a message, and nothing is asked.
    page.locator("#aqa-after textarea, #aqa-after input").first.fill("2019-13-01")
    ask_in_chat(page, QUESTION)
    toast = page.locator('[data-testid="toast-body"]').filter(has_text="2019-13-01")
    expect(toast.locator('[data-testid="toast-text"]')).to_have_text(
        "The \"after\" date '2019-13-01' is not a valid date: use YYYY-MM-DD, e.g. 2019-06-30.",
        timeout=30_000,
    )
    expect(page.locator("#aqa-chat")).not_to_contain_text(QUESTION)  # nothing was asked
    shot(page, "02-bad-date")
    toast.locator('[data-testid="toast-close"]').click()
    page.locator("#aqa-after textarea, #aqa-after input").first.fill("")

    started = time.perf_counter()
    ask_in_chat(page, QUESTION)
    chat = page.locator("#aqa-chat")
    expect(chat).to_contain_text(WASTE_SENTENCE, timeout=FIRST_ANSWER_MS)
    expect(chat).to_contain_text("[1]", timeout=ANSWER_MS)
    sources = page.locator("#aqa-sources")
    expect(sources.locator("li.aqa-cite").first).to_be_visible(timeout=ANSWER_MS)
    print(f"first answer in the browser: {time.perf_counter() - started:.1f}s")

    first = sources.locator("li.aqa-cite").filter(has_text=SEED_ID)
    expect(first.locator(".aqa-n")).to_have_text(re.compile(r"^\[\d\]$"))
    expect(first.locator(".aqa-title")).to_have_text("Macron’s White House visit was a failure – Politico")
    expect(first.locator(".aqa-source")).to_have_text("RT")
    expect(first.locator(".aqa-id")).to_have_text(SEED_ID)
    expect(first.locator("mark")).to_have_text(WASTE_SENTENCE)
    assert "a waste of time" in first.locator("mark").inner_text()
    shot(page, "03-answer-with-sources")

    # Open the seed's citation: the whole article, the quote highlighted in it.
    page.locator("#aqa-cite-pick").get_by_text(re.compile(r"\[\d\] Macron’s White House visit")).click()
    article = page.locator("#aqa-article")
    expect(article.locator("mark#aqa-quote")).to_have_text(WASTE_SENTENCE, timeout=30_000)
    expect(article.locator("mark#aqa-quote")).to_be_in_viewport(timeout=10_000)  # scrolled to
    expect(article.locator(".aqa-article-title")).to_have_text("Macron’s White House visit was a failure – Politico")
    full_text = read_article_text(app[0].library.index_dir, SEED_ID)
    assert article.locator(".aqa-article-text").inner_text().strip() == full_text.strip()
    shot(page, "04-citation-opened")

    # Upload a new article in the Articles tab.
    bridge = tmp_path / "zorvath-bridge.txt"
    bridge.write_text(BRIDGE_TEXT, encoding="utf-8")
    upload(page, [bridge])
    report = page.locator("#aqa-report")
    expect(report).to_contain_text("Indexed: added 1, updated 0, unchanged 0", timeout=INDEX_MS)
    expect(page.locator("#aqa-stats")).to_contain_text("293")
    page.locator("#aqa-search textarea, #aqa-search input").first.fill("Zorvath")
    expect(page.locator("#aqa-articles")).to_contain_text(BRIDGE_TITLE, timeout=30_000)
    expect(page.locator("#aqa-articles")).to_contain_text("zorvath-bridge")
    assert (app[0].library.index_dir / "uploads" / "zorvath-bridge.txt").read_text(encoding="utf-8") == BRIDGE_TEXT
    shot(page, "05-uploaded")

    # Back in the chat, the uploaded article answers a question about its fact.
    page.get_by_role("tab", name="Chat").click()
    page.locator("#aqa-clear").click()
    expect(chat).not_to_contain_text(WASTE_SENTENCE, timeout=30_000)
    ask_in_chat(page, "How much did the Zorvath Bridge repairs cost?")
    expect(chat).to_contain_text("9.7 million euros", timeout=ANSWER_MS)
    expect(chat).to_contain_text(BRIDGE_FACT + " [1]", timeout=ANSWER_MS)
    first = sources.locator("li.aqa-cite").first
    expect(first.locator(".aqa-id")).to_have_text("zorvath-bridge", timeout=ANSWER_MS)
    expect(first.locator(".aqa-title")).to_have_text(BRIDGE_TITLE)
    expect(first.locator("mark")).to_have_text(BRIDGE_FACT)
    # The short answer is shown first and highlighted inside the quote.
    expect(chat).to_contain_text("9.7 million euros: ", timeout=ANSWER_MS)
    expect(first.locator("mark .aqa-answer")).to_have_text("9.7 million euros")
    shot(page, "06-answer-from-upload")


def test_upload_reports_bad_file_and_indexes_the_good_one(app, page, tmp_path):
    from playwright.sync_api import expect

    from articleqa.index import load_articles

    _, url = app
    library = app[0].library
    empty = tmp_path / "empty-note.txt"
    empty.write_text("", encoding="utf-8")
    good = tmp_path / "harbour-ferry.md"
    good.write_text(
        "Harbour ferry service resumes\nThe Quillon harbour ferry resumed service on Monday "
        "with three new electric boats.\n",
        encoding="utf-8",
    )
    expected_reason = load_articles([empty]).failures[0].reason
    assert expected_reason == "file is empty"
    before = library.store.articles.count()

    page.goto(url)
    page.locator("#aqa-question textarea").wait_for(timeout=60_000)
    upload(page, [empty, good])
    report = page.locator("#aqa-report")
    expect(report).to_contain_text("Indexed: added 1,", timeout=INDEX_MS)
    expect(report).to_contain_text("1 input(s) failed")
    expect(report).to_contain_text(f"uploads/empty-note.txt: {expected_reason}")
    expect(report).not_to_contain_text(str(library.index_dir))  # no server paths for visitors
    shot(page, "07-upload-with-bad-file")

    assert library.store.articles.count() == before + 1
    assert library.get_article("harbour-ferry").title == "Harbour ferry service resumes"
    assert (library.uploads_dir / "harbour-ferry.md").exists()
    assert not (library.uploads_dir / "empty-note.txt").exists()  # a failed copy is not kept
    assert library.get_article(SEED_ID) is not None  # nothing already indexed was lost

    # Prune removes the article whose uploaded file is gone, and nothing else.
    (library.uploads_dir / "harbour-ferry.md").unlink()
    page.locator("#aqa-prune").click()
    expect(report).to_contain_text("Pruned: added 0, updated 0, unchanged 0, removed 1,", timeout=INDEX_MS)
    shot(page, "08-pruned")
    assert library.get_article("harbour-ferry") is None
    assert library.store.articles.count() == before
    assert library.get_article(SEED_ID) is not None


def test_questions_while_indexing_do_not_fail(app):
    """Asking while an upload is being indexed still answers (from committed data)."""
    import threading

    from gradio_client import Client

    from tests.conftest import corpus_rows, write_jsonl

    library = app[0].library
    rows = [dict(r, id=f"concurrent-{n}") for n, r in enumerate(corpus_rows(40))]
    batch = write_jsonl(library.index_dir.parent / "concurrent.jsonl", rows)
    reports = []
    writer = threading.Thread(target=lambda: reports.append(library.add([batch], [])))
    client = Client(app[1], verbose=False)
    writer.start()
    answers = []
    while writer.is_alive() or not answers:
        answers.append(client.predict(QUESTION, api_name="/ask"))
    writer.join()
    assert reports and reports[0].failed == [] and len(reports[0].added) == 40
    for answer in answers:
        assert answer["grounded"] and WASTE_SENTENCE in [c["quote"] for c in answer["citations"]]


def test_empty_index_shows_how_to_add_articles_then_works_after_upload(browser, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError
    from playwright.sync_api import expect

    index_dir = tmp_path / "missing" / "index"
    started, url = start_app(index_dir)
    try:
        assert index_dir.is_dir()  # created
        with pytest.raises(AppError, match="No articles are indexed yet"):
            Client(url, verbose=False).predict(QUESTION, api_name="/ask")

        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(url)
        notice = page.locator("#aqa-empty-notice")
        expect(notice).to_contain_text("No articles indexed yet", timeout=60_000)
        expect(notice).to_contain_text("Articles tab")
        expect(notice).to_contain_text("articleqa index PATH... --index-dir INDEX_DIR")
        expect(notice).not_to_contain_text(str(index_dir.resolve()))  # the server's paths stay private
        shot(page, "09-empty-index")

        bridge = tmp_path / "zorvath-bridge.txt"
        bridge.write_text(BRIDGE_TEXT, encoding="utf-8")
        upload(page, [bridge])
        expect(page.locator("#aqa-report")).to_contain_text("Indexed: added 1,", timeout=INDEX_MS)
        page.get_by_role("tab", name="Chat").click()
        expect(notice).to_be_hidden(timeout=30_000)
        ask_in_chat(page, "How much did the Zorvath Bridge repairs cost?")
        expect(page.locator("#aqa-chat")).to_contain_text(BRIDGE_FACT + " [1]", timeout=ANSWER_MS)
        shot(page, "10-empty-index-after-upload")
        context.close()
    finally:
        stop_app(started)


def test_articles_tab_follows_and_unfollows_a_feed(browser, tmp_path):
    """The feeds section of the Articles tab edits the subscriptions `articleqa watch` polls."""
    from playwright.sync_api import expect

    from articleqa.index.subscriptions import SubscriptionStore

    feed_url = "https://news.example/rss.xml"
    index_dir = tmp_path / "index"
    started, url = start_app(index_dir)
    try:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(url)
        page.get_by_role("tab", name="Articles").click()
        page.locator("#aqa-feed-url textarea, #aqa-feed-url input").first.fill(feed_url)
        page.locator("#aqa-follow").click()
        expect(page.locator("#aqa-feed-note")).to_contain_text(f"Following {feed_url}", timeout=30_000)
        expect(page.locator("#aqa-feeds")).to_contain_text(feed_url)
        expect(page.locator("#aqa-feeds")).to_contain_text("not yet")
        shot(page, "11-feed-followed")
        assert [s.url for s in SubscriptionStore.in_folder(index_dir).list()] == [feed_url]
        page.locator("#aqa-feed-url textarea, #aqa-feed-url input").first.fill(feed_url)
        page.locator("#aqa-unfollow").click()
        expect(page.locator("#aqa-feed-note")).to_contain_text(f"Stopped following {feed_url}", timeout=30_000)
        expect(page.locator("#aqa-feeds")).not_to_contain_text(feed_url)
        assert SubscriptionStore.in_folder(index_dir).list() == []
        context.close()
    finally:
        stop_app(started)
