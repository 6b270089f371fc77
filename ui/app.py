"""The web chat: a Gradio app over one index folder.

    from articleqa.ui.app import serve
    serve(Path(".articleqa"))                 # http://127.0.0.1:7860, blocks until Ctrl-C

Chat tab: streamed, cited answers (multi-turn: follow-ups use the previous answer's
articles), a sources panel with each quoted sentence highlighted in its passage, and the
full article of any citation. Articles tab: the indexed articles, uploads and URLs indexed
incrementally with a progress bar, prune, rebuild, statistics, and the news feeds the index
follows (polled here with `serve(watch_every=...)`, or by `articleqa watch`). API: `/ask`
(the JSON answer).

No `from __future__ import annotations` here: `gr.api` reads the `/ask` function's type
hints at run time to describe the endpoint.
"""

import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from articleqa.index.offline import apply_offline_environment

# The web app's entry point: the offline switches (no Hugging Face Hub, no analytics) are set
# here, before gradio is imported, because gradio imports huggingface_hub, which reads
# HF_HUB_OFFLINE once, at import. The only other module that sets them on import is `ui.cli`.
apply_offline_environment()

import gradio as gr  # noqa: E402

from articleqa.index import DEFAULT_INDEX_DIR, SUPPORTED_EXTENSIONS  # noqa: E402
from articleqa.index.defaults import DEFAULT_HOST_DELAY  # noqa: E402
from articleqa.index.sources import FetchPolicy  # noqa: E402
from articleqa.index.watch import PollResult  # noqa: E402
from articleqa.qa.api import QAError  # noqa: E402
from articleqa.qa.models import Answer  # noqa: E402
from articleqa.qa.options import QAOptions  # noqa: E402
from articleqa.qa.retrieval import FilterError, Filters, parse_filters  # noqa: E402
from articleqa.ui import render  # noqa: E402
from articleqa.ui.library import IndexBusyError, Library  # noqa: E402

__all__ = ["build_app", "serve", "form_filters", "empty_index_message", "CSS", "THEME"]

log = logging.getLogger(__name__)
CSS = render.CSS
# System fonts only: the default theme would make the browser fetch Google Fonts.
THEME = gr.themes.Default(
    font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"],
    font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
)
MAX_K = 20
_PHASES = {"reading": "Reading files", "indexing": "Indexing articles", "pruning": "Pruning"}
_SCROLL_TO_QUOTE = """() => { setTimeout(() => {
  const m = document.querySelector('#aqa-article mark');
  if (m) m.scrollIntoView({block: 'center', behavior: 'smooth'});
}, 200); }"""


def _error(message: str, title: str = "Error") -> gr.Error:
    """A message for the user (a toast in the page, an AppError for API clients); expected
    errors are not printed as tracebacks on the server console."""
    return gr.Error(message, title=title, print_exception=False)


def empty_index_message() -> str:
    """What the chat tab shows while the index holds no articles (no server paths: those are
    the operator's business, not every visitor's)."""
    return (
        "### No articles indexed yet\n\n"
        "Add some in the **Articles** tab: upload files (.txt, .md, .html, .htm, .json, .jsonl) "
        "or paste article URLs, then come back here and ask.\n\n"
        "Or index a folder from a terminal, into the index folder this app was started with; "
        "questions see the new articles as soon as indexing has finished:\n\n"
        "```\narticleqa index PATH... --index-dir INDEX_DIR\n```"
    )


def date_placeholders(library: Library) -> tuple[str, str]:
    """The index's own first and last publication dates, as examples for the date filters."""
    first, last = library.date_range()
    return (first.isoformat() if first else "YYYY-MM-DD", last.isoformat() if last else "YYYY-MM-DD")


def form_filters(sources: list[str] | None, after: str | None, before: str | None) -> Filters:
    """Filters from the form or `/ask` through `qa.retrieval.parse_filters` (the command line's
    too); a bad date or an empty date range raises `gr.Error` with the reason."""
    try:
        return parse_filters(sources, after, before)
    except FilterError as exc:
        raise _error(str(exc), title="Bad date range" if exc.field == "range" else "Bad date") from None


def _clamp_k(k: Any, default: int) -> int:
    try:
        k = int(k)
    except (TypeError, ValueError):
        raise _error(f"k must be a whole number of passages, got {k!r}") from None
    if not 1 <= k <= 100:
        raise _error(f"k must be between 1 and 100 passages, got {k}")
    return k


def _question(question: Any) -> str:
    if not isinstance(question, str) or not question.strip():
        raise _error('The question is empty: type one, e.g. "Who called the meeting a waste of time?"')
    return question.strip()


def _busy_message(library: Library, exc: Exception) -> str:
    log.warning("question failed: %s: %s", type(exc).__name__, exc, exc_info=not library.writing)
    if library.writing:
        return f"The index is being updated; ask again when it finishes ({exc})."
    return f"Could not answer: {exc}"


def _bind(fn: Callable, *args: Any) -> functools.partial:
    """`fn` with its leading arguments (the Library, ...) fixed, for Gradio: the signature
    Gradio inspects is the rest of `fn`'s (inputs, `gr.Progress`), and the (private) endpoint
    keeps `fn`'s name."""
    bound = functools.partial(fn, *args)
    bound.__name__ = fn.__name__  # type: ignore[attr-defined]
    return bound


# ---- callbacks: chat ----------------------------------------------------------------------


def respond(lib: Library, default_k: int, question, chat, turns, k, sources, after, before) -> Iterator[tuple]:
    """Ask: the chat, sources panel, citation choices and article panel as the answer streams."""
    text = _question(question)
    filters = form_filters(sources, after, before)
    k = _clamp_k(k, default_k)
    chat = list(chat or [])
    turns = list(turns or [])
    # The ArticleQA stays open until the answer is complete, even if a write replaces it.
    with lib.session() as qa:
        if qa is None:
            chat += [
                {"role": "user", "content": text},
                {
                    "role": "assistant",
                    "content": "No articles are indexed yet: add some in the Articles tab, then ask again.",
                },
            ]
            gr.Warning("No articles are indexed yet: add some in the Articles tab.")
            yield (
                "",
                chat,
                turns,
                None,
                render.sources_html(None),
                gr.Radio(choices=[], value=None),
                render.article_html(None, None),
                gr.Markdown(visible=True),
            )
            return
        chat += [{"role": "user", "content": text}, {"role": "assistant", "content": ""}]
        no_pick = gr.Radio(choices=[], value=None)
        yield (
            "",
            chat,
            turns,
            None,
            render.searching_html(),
            no_pick,
            render.article_html(None, None),
            gr.Markdown(visible=False),
        )
        answer: Answer | None = None
        try:
            for event in qa.stream(text, turns, filters, k=k):
                if event.kind == "passages":
                    yield (
                        "",
                        chat,
                        turns,
                        None,
                        render.searching_html(len(event.passages)),
                        no_pick,
                        gr.skip(),
                        gr.skip(),
                    )
                elif event.kind == "delta":
                    chat[-1] = {"role": "assistant", "content": chat[-1]["content"] + event.text}
                    yield "", chat, turns, None, gr.skip(), gr.skip(), gr.skip(), gr.skip()
                elif event.kind == "answer":
                    answer = event.answer
        except QAError as exc:
            raise _error(str(exc)) from None
        except gr.Error:
            raise
        except Exception as exc:  # a failing store while the index is rebuilt, etc.
            chat[-1] = {"role": "assistant", "content": _busy_message(lib, exc)}
            yield "", chat, turns, None, render.sources_html(None), no_pick, gr.skip(), gr.skip()
            raise _error(_busy_message(lib, exc)) from None
        if answer is None:  # the stream always ends with the answer; be explicit if not
            raise _error("Could not answer: the answer was not produced.")
        chat[-1] = {"role": "assistant", "content": answer.text}
        turns.append(qa.turn(text, answer))
        choices = render.citation_choices(answer)
        yield (
            "",
            chat,
            turns,
            answer,
            render.sources_html(answer),
            gr.Radio(choices=choices, value=None, visible=True),
            render.article_html(None, None),
            gr.skip(),
        )


def clear_chat():
    return (
        [],
        [],
        None,
        render.sources_html(None),
        gr.Radio(choices=[], value=None),
        render.article_html(None, None),
        "",
    )


def open_citation(lib: Library, value, answer):
    citation = render.pick_citation(answer, value)
    article = lib.get_article(citation.article_id) if citation else None
    return render.article_html(article, citation)


# ---- callbacks: articles ------------------------------------------------------------------


def _progress_feed(progress: gr.Progress) -> Callable[[str, int, int | None], None]:
    def feed(phase: str, done: int, total: int | None) -> None:
        desc = _PHASES.get(phase, phase)
        if total:
            progress((done, total), desc=desc, unit="articles" if phase != "reading" else "files")
        else:
            progress((done, None), desc=desc, unit="files")

    return feed


def refreshed(lib: Library, search: str = ""):
    """Statistics, table, source choices, empty notice and date examples after the index
    changed (the outputs `_ArticlesTab.after_write` lists)."""
    first, last = date_placeholders(lib)
    return (
        render.stats_markdown(lib.stats()),
        lib.articles(search or ""),
        gr.Dropdown(choices=lib.sources()),
        gr.Markdown(visible=lib.qa() is None),
        gr.Textbox(placeholder=first),
        gr.Textbox(placeholder=last),
    )


def _write(action: Callable, title: str, *args: Any, progress: gr.Progress) -> str:
    """Run an index write (`action`, a `Library` method) with a progress bar; its report."""
    try:
        report = action(*args, progress=_progress_feed(progress))
    except IndexBusyError as exc:
        raise _error(str(exc)[:1].upper() + str(exc)[1:] + ".") from None
    except Exception as exc:
        raise _error(f"{title} failed: {exc}") from None
    failed = [(f.origin, f.reason) for f in report.failed]
    if failed:
        gr.Warning(f"{len(failed)} input(s) could not be indexed; see the report.")
    return render.report_markdown(report.summary(), failed, title)


def index_uploads(lib: Library, files, urls, replace, search, progress=gr.Progress()):
    paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
    url_list = [u.strip() for u in (urls or "").splitlines() if u.strip()]
    if not paths and not url_list:
        raise _error("Choose files to upload or paste URLs (one per line) first.")
    add = functools.partial(lib.add, replace=bool(replace))
    report = _write(add, "Indexed", paths, url_list, progress=progress)
    return (report, None, "", *refreshed(lib, search))


def prune(lib: Library, search, progress=gr.Progress()):
    report = _write(lib.prune, "Pruned", progress=progress)
    return (report, *refreshed(lib, search))


def rebuild(lib: Library, search, progress=gr.Progress()):
    report = _write(lib.rebuild, "Rebuilt", progress=progress)
    return (report, *refreshed(lib, search))


def search_articles(lib: Library, search):
    return lib.articles(search or "")


# ---- callbacks: feeds ---------------------------------------------------------------------


def _feed_url(url: Any) -> str:
    url = (url or "").strip() if isinstance(url, str) else ""
    if not url:
        raise _error("Paste the URL of a news feed (RSS, Atom) or sitemap first.")
    return url


def follow_feed(lib: Library, url):
    """Follow a feed: the note, the cleared URL box and the subscription table."""
    url = _feed_url(url)
    try:
        added = lib.follow(url)
    except ValueError as exc:
        raise _error(str(exc)) from None
    note = render.feed_note("Following" if added else "Already following", url, lib.watching)
    return note, "", lib.subscription_rows()


def unfollow_feed(lib: Library, url):
    url = _feed_url(url)
    if not lib.unfollow(url):
        raise _error(f"{url} is not followed.")
    return render.feed_note("Stopped following", url, lib.watching), "", lib.subscription_rows()


def feed_rows(lib: Library):
    return lib.subscription_rows()


# ---- the public API -----------------------------------------------------------------------


def ask_question(lib: Library, default_k: int, question: Any, k: Any, sources, after, before) -> dict:
    """The `/ask` endpoint's work: the answer as JSON, or `gr.Error` with the reason."""
    text = _question(question)
    filters = form_filters(sources, after, before)
    k = _clamp_k(k, default_k)
    with lib.session() as qa:
        if qa is None:
            raise _error(
                "No articles are indexed yet: add some with `articleqa index PATH "
                "--index-dir INDEX_DIR` or the Articles tab."
            )
        try:
            answer = qa.ask(text, filters=filters, k=k)
        except QAError as exc:
            raise _error(str(exc)) from None
        except Exception as exc:
            raise _error(_busy_message(lib, exc)) from None
    return answer.model_dump(mode="json")


# ---- layout: one function per tab, each wiring its own events -----------------------------

_PRIVATE = {"api_visibility": "private"}


@dataclass
class _ChatTab:
    """The chat tab's components the articles tab and the page load update."""

    empty_notice: gr.Markdown
    source_filter: gr.Dropdown
    after: gr.Textbox
    before: gr.Textbox


@dataclass
class _ArticlesTab:
    search: gr.Textbox
    after_write: list[gr.components.Component]  # what `refreshed` returns, in its order
    feeds: gr.Dataframe  # the subscriptions


def _chat_tab(lib: Library, default_k: int, turns: gr.State, answer_state: gr.State) -> _ChatTab:
    """The Chat tab: question, filters, conversation, sources panel and article panel."""
    with gr.Tab("Chat", id="chat"):
        empty_notice = gr.Markdown(
            empty_index_message(),
            visible=lib.qa() is None,
            elem_id="aqa-empty-notice",
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    label="Conversation",
                    height=440,
                    render_markdown=False,
                    latex_delimiters=[],
                    feedback_options=None,
                    buttons=["copy"],
                    elem_id="aqa-chat",
                )
                with gr.Row():
                    question = gr.Textbox(
                        placeholder="Ask a question about the articles…",
                        show_label=False,
                        scale=5,
                        lines=1,
                        max_lines=4,
                        elem_id="aqa-question",
                    )
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="aqa-ask")
                    clear = gr.Button("Clear chat", scale=1, elem_id="aqa-clear")
                with gr.Row():
                    k_slider = gr.Slider(
                        1,
                        MAX_K,
                        value=min(default_k, MAX_K),
                        step=1,
                        label="Passages to retrieve (k)",
                        elem_id="aqa-k",
                    )
                    source_filter = gr.Dropdown(
                        choices=lib.sources(),
                        value=[],
                        multiselect=True,
                        label="Only these sources",
                        elem_id="aqa-sources-filter",
                    )
                with gr.Row():
                    first, last = date_placeholders(lib)
                    after = gr.Textbox(label="Published after (YYYY-MM-DD)", placeholder=first, elem_id="aqa-after")
                    before = gr.Textbox(label="Published before (YYYY-MM-DD)", placeholder=last, elem_id="aqa-before")
            with gr.Column(scale=2):
                sources_panel = gr.HTML(render.sources_html(None), elem_id="aqa-sources")
                cite_pick = gr.Radio(
                    choices=[],
                    value=None,
                    label="Open a citation: the whole article, quote highlighted",
                    elem_id="aqa-cite-pick",
                )
                article_panel = gr.HTML(render.article_html(None, None), elem_id="aqa-article")

    chat_outputs = [question, chatbot, turns, answer_state, sources_panel, cite_pick, article_panel, empty_notice]
    chat_inputs = [question, chatbot, turns, k_slider, source_filter, after, before]
    for trigger in (question.submit, send.click):
        trigger(_bind(respond, lib, default_k), chat_inputs, chat_outputs, concurrency_limit=4, **_PRIVATE)
    clear.click(
        clear_chat,
        None,
        [chatbot, turns, answer_state, sources_panel, cite_pick, article_panel, question],
        **_PRIVATE,
    )
    cite_pick.change(_bind(open_citation, lib), [cite_pick, answer_state], article_panel, **_PRIVATE).then(
        None, None, None, js=_SCROLL_TO_QUOTE, **_PRIVATE
    )
    return _ChatTab(empty_notice=empty_notice, source_filter=source_filter, after=after, before=before)


def _articles_tab(lib: Library, chat: _ChatTab) -> _ArticlesTab:
    """The Articles tab: uploads and URLs, prune, rebuild, statistics and the article table;
    its writes refresh the chat tab's source choices, empty notice and date examples."""
    with gr.Tab("Articles", id="articles"):
        stats = gr.Markdown(render.stats_markdown(lib.stats()), elem_id="aqa-stats")
        with gr.Row():
            uploads = gr.File(
                label="Upload articles (" + ", ".join(SUPPORTED_EXTENSIONS) + ")",
                file_count="multiple",
                file_types=list(SUPPORTED_EXTENSIONS),
                type="filepath",
                elem_id="aqa-upload",
            )
            urls = gr.Textbox(
                label="Article URLs (one per line)",
                lines=4,
                placeholder="https://example.org/news/story.html",
                elem_id="aqa-urls",
            )
        replace_box = gr.Checkbox(
            label="Replace earlier uploads of the same name (otherwise they are refused)",
            value=False,
            elem_id="aqa-replace",
        )
        with gr.Row():
            index_btn = gr.Button("Index uploads and URLs", variant="primary", elem_id="aqa-index")
            # Not offered for a shared index: the files are on the machines that indexed them.
            prune_btn = gr.Button(
                "Prune: remove articles whose file is gone", elem_id="aqa-prune", visible=not lib.shared
            )
            rebuild_btn = gr.Button("Rebuild the index from the stored articles", variant="stop", elem_id="aqa-rebuild")
        report = gr.Markdown("", elem_id="aqa-report")
        search = gr.Textbox(label="Search articles (title, source, date, id)", elem_id="aqa-search")
        table = gr.Dataframe(
            value=lib.articles(),
            headers=["title", "source", "date", "id"],
            datatype=["str", "str", "str", "str"],
            interactive=False,
            wrap=True,
            column_widths=["52%", "14%", "12%", "22%"],
            max_height=520,
            elem_id="aqa-articles",
        )
        feeds = _feeds_section(lib)

    after_write = [stats, table, chat.source_filter, chat.empty_notice, chat.after, chat.before]
    index_btn.click(
        _bind(index_uploads, lib),
        [uploads, urls, replace_box, search],
        [report, uploads, urls, *after_write],
        **_PRIVATE,
    )
    prune_btn.click(_bind(prune, lib), [search], [report, *after_write], **_PRIVATE)
    rebuild_btn.click(_bind(rebuild, lib), [search], [report, *after_write], **_PRIVATE)
    search.change(_bind(search_articles, lib), [search], table, show_progress="hidden", **_PRIVATE)
    return _ArticlesTab(search=search, after_write=after_write, feeds=feeds)


def _feeds_section(lib: Library) -> gr.Dataframe:
    """News feeds followed: the subscriptions (shared with `articleqa watch`), each with its
    last poll, last error and article counts; follow or stop following one by URL."""
    gr.Markdown("### News feeds followed", elem_id="aqa-feeds-heading")
    with gr.Row():
        feed_url = gr.Textbox(
            label="Feed or sitemap URL",
            placeholder="https://example.org/rss.xml",
            scale=4,
            elem_id="aqa-feed-url",
        )
        follow_btn = gr.Button("Follow", variant="primary", scale=1, elem_id="aqa-follow")
        unfollow_btn = gr.Button("Stop following", scale=1, elem_id="aqa-unfollow")
        refresh_btn = gr.Button("Refresh", scale=1, elem_id="aqa-feeds-refresh")
    note = gr.Markdown("", elem_id="aqa-feed-note")
    table = gr.Dataframe(
        value=lib.subscription_rows(),
        headers=["feed", "last poll", "last error", "articles added", "updated"],
        datatype=["str", "str", "str", "str", "str"],
        interactive=False,
        wrap=True,
        column_widths=["40%", "16%", "28%", "8%", "8%"],
        elem_id="aqa-feeds",
    )
    follow_btn.click(_bind(follow_feed, lib), [feed_url], [note, feed_url, table], **_PRIVATE)
    feed_url.submit(_bind(follow_feed, lib), [feed_url], [note, feed_url, table], **_PRIVATE)
    unfollow_btn.click(_bind(unfollow_feed, lib), [feed_url], [note, feed_url, table], **_PRIVATE)
    refresh_btn.click(_bind(feed_rows, lib), None, table, show_progress="hidden", **_PRIVATE)
    return table


def _api(lib: Library, default_k: int) -> None:
    """The public `/ask` endpoint (its signature, type hints and docstring describe it)."""

    def ask(
        question: str,
        k: int = default_k,
        sources: list[str] | None = None,
        after: str = "",
        before: str = "",
    ) -> dict:
        """Answer a question from the indexed articles: the answer text with [n] markers,
        its citations (article id, title, quote, character offsets, passage), or
        grounded=false with related passages. Filters: sources, after/before (YYYY-MM-DD)."""
        return ask_question(lib, default_k, question, k, sources, after, before)

    gr.api(ask, api_name="ask", concurrency_limit=4)


def build_app(library: Library | None = None, *, index_dir: Path | None = None, **library_kwargs: Any) -> gr.Blocks:
    """The Gradio app for `library` (or for a `Library` opened on `index_dir` with
    `library_kwargs`: `options` (a `qa.options.QAOptions`), `fetch`, `chunk_size`,
    `chunk_overlap`). The opened library is `app.library`; close it with `app.library.close()`.
    Launch with `css=CSS, theme=THEME` (as `serve` does)."""
    if library is None:
        if index_dir is None:
            raise ValueError("build_app needs a Library or an index_dir")
        library = Library(Path(index_dir), **library_kwargs)
    lib = library
    default_k = lib.options.k

    with gr.Blocks(title="Article QA", analytics_enabled=False) as demo:
        turns = gr.State([])
        answer_state = gr.State(None)
        gr.Markdown(
            "# Article QA\nAsk questions about the indexed news articles; every answer quotes "
            "and cites the sentences it comes from."
        )
        with gr.Tabs():
            chat = _chat_tab(lib, default_k, turns, answer_state)
            articles = _articles_tab(lib, chat)
        demo.load(_bind(refreshed, lib), [articles.search], articles.after_write, show_progress="hidden", **_PRIVATE)
        demo.load(_bind(feed_rows, lib), None, articles.feeds, show_progress="hidden", **_PRIVATE)
        _api(lib, default_k)

    demo.library = lib  # type: ignore[attr-defined]
    return demo


def serve(
    index_dir: Path = Path(DEFAULT_INDEX_DIR),
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: tuple[str, str] | None = None,
    options: QAOptions | None = None,
    fetch: FetchPolicy | None = None,
    watch_every: float | None = None,
    host_delay: float = DEFAULT_HOST_DELAY,
    on_poll: Callable[[PollResult], None] | None = None,
    prevent_thread_lock: bool = False,
) -> gr.Blocks:
    """Open (or create) `index_dir` and serve the web chat on http://host:port.

    `options`: how the index is opened and questions answered (default: `QAOptions()`;
    `Settings.qa_options()` gives the configured ones); `fetch`: the limits uploads and URLs
    are read under. `watch_every`: poll the index's feed subscriptions every this many seconds
    in a background thread (`Library.start_watching`; `host_delay` seconds between requests to
    one host, `on_poll` gets each poll's result), stopped with the server. Blocks until
    interrupted unless `prevent_thread_lock`; then the caller closes it with `app.close()` and
    `app.library.close()` (which stops the poller). No share link, no analytics (the offline
    switches are set when this module is imported).

    Raises:
        index.IndexMismatchError, index.ChromaUnavailableError: the index cannot be opened.
        OSError: the port is taken.
    """
    library = Library(Path(index_dir), options=options or QAOptions(), fetch=fetch or FetchPolicy())
    try:
        if watch_every is not None:
            library.start_watching(watch_every, host_delay=host_delay, on_poll=on_poll)
        demo = build_app(library)
        demo.queue(default_concurrency_limit=1)
        demo.launch(
            server_name=host,
            server_port=port,
            auth=auth,
            share=False,
            inbrowser=False,
            prevent_thread_lock=prevent_thread_lock,
            show_error=True,
            quiet=True,
            ssr_mode=False,
            mcp_server=False,
            max_file_size="50mb",
            css=CSS,
            theme=THEME,
            footer_links=["api"],
            run_history=False,
        )
    except BaseException:
        library.close()
        raise
    if not prevent_thread_lock:  # launch returned: the server was stopped (Ctrl-C)
        library.close()
    return demo
