"""`articleqa`: the command line. It parses arguments, calls the `index` and `qa` libraries
and prints what they return; every operation it offers is a library function.

Settings are built here once (environment, `.env`, flags) and passed inward; library errors
become one-line messages with a non-zero exit code, never tracebacks. The offline defaults
are set here, at the entry point (`index.offline`), before any Hugging Face or Gradio import.

Cold start: at module level this imports only typer, rich and constant-only modules
(`index.defaults`, `qa.defaults`, `index.offline`); each command imports the libraries it runs
(Chroma, LangChain, the model libraries, Gradio) when it is called, so `articleqa --help` and an
argument error load none of them (tests/test_cold_start.py).
"""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from articleqa.index.offline import apply_offline_environment

# Offline by default: set before any Hugging Face or Gradio import can read them (the commands
# import those later, when they run; Chroma's clients turn telemetry off themselves).
apply_offline_environment()

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402

from articleqa.index.defaults import DEFAULT_HOST_DELAY, DEFAULT_INDEX_DIR, DEFAULT_WATCH_EVERY  # noqa: E402
from articleqa.qa.defaults import DEFAULT_K, DEFAULT_LLM_TIMEOUT, DEFAULT_RETRIEVAL_MODE, RETRIEVAL_MODES  # noqa: E402

if TYPE_CHECKING:  # `qa.settings` imports the index and qa libraries: each command loads it when run
    from articleqa.qa.settings import Settings

app = typer.Typer(
    name="articleqa",
    help="Ask questions about a collection of news articles; answers quote and cite them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)  # messages stay one line, greppable


@app.callback()
def _main() -> None:
    """Ask questions about a collection of news articles; answers quote and cite them."""


out = Console(soft_wrap=True)  # answers and quotes are never hard-wrapped


def env_hint(variable: str, default: object = None) -> str:
    """The end of an option's help that names its environment variable and default, shown as
    " [env: VARIABLE; default X]". The flag's own default is None (the settings apply theirs),
    so this is where the help shows it. The bracket is escaped: typer renders help as rich
    markup, which would take "[env: ...]" for a style and drop it."""
    return rf" \[env: {variable}" + (f"; default {default}]" if default is not None else "]")


# The options that several commands take, each declared once (its flag, type and help).
IndexDir = Annotated[
    Path | None, typer.Option("--index-dir", help=f"Index folder{env_hint('ARTICLEQA_INDEX_DIR', DEFAULT_INDEX_DIR)}.")
]
ChromaUrl = Annotated[
    str | None,
    typer.Option(
        "--chroma-url", help=f"Use a Chroma server, e.g. http://127.0.0.1:8000{env_hint('ARTICLEQA_CHROMA_URL')}."
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="Keep the articles, lexical index and records in PostgreSQL, e.g. "
        f"postgresql+psycopg://user:password@host/articleqa (docs/DEPLOYMENT.md){env_hint('ARTICLEQA_DATABASE_URL')}.",
    ),
]
KOpt = Annotated[int | None, typer.Option("--k", help=f"Passages to retrieve{env_hint('ARTICLEQA_K', DEFAULT_K)}.")]
SourceOpt = Annotated[list[str] | None, typer.Option("--source", help="Only articles from this source (repeatable).")]
AfterOpt = Annotated[str | None, typer.Option("--after", help="Only articles published on or after YYYY-MM-DD.")]
BeforeOpt = Annotated[str | None, typer.Option("--before", help="Only articles published on or before YYYY-MM-DD.")]
TodayOpt = Annotated[
    str | None, typer.Option("--today", help='The date relative cues count from ("last week"); default: today.')
]
LlmOpt = Annotated[
    str | None,
    typer.Option(
        "--llm",
        help="Answerer: extractive (default) or a LangChain chat model PROVIDER:MODEL, e.g. ollama:llama3.2, "
        f"openai:gpt-4o-mini{env_hint('ARTICLEQA_LLM')}. Keys come from the provider's environment variable.",
    ),
]
LlmBaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--llm-base-url",
        help="The LLM server, e.g. http://127.0.0.1:8080/v1 for an OpenAI-compatible one (llama.cpp, vLLM, "
        f"LM Studio){env_hint('ARTICLEQA_LLM_BASE_URL')}.",
    ),
]
LlmTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--llm-timeout",
        help="Seconds for one complete LLM reply, then the extractive answer"
        f"{env_hint('ARTICLEQA_LLM_TIMEOUT', f'{DEFAULT_LLM_TIMEOUT:g}')}.",
    ),
]

EveryOpt = Annotated[
    str,
    typer.Option(
        "--every",
        help="Time between two polls of the feeds: 30s, 15m, 1h, 1h30m, ...; a failing feed is polled less "
        f"often (back-off). Requests to one host wait{env_hint('ARTICLEQA_WATCH_HOST_DELAY', DEFAULT_HOST_DELAY)} "
        "seconds between them.",
    ),
]

EXIT_FAILED_INPUT = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def settings_from(**flags: object) -> Settings:
    from pydantic import ValidationError

    from articleqa.qa.settings import load_settings

    try:
        return load_settings(**flags)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise fail(f"invalid configuration: {problems}") from None


def open_store(settings: Settings, *, check_model: bool = True):
    """The index folder named by the settings, or a clear error."""
    from articleqa.index import IndexStoreError, ModelNotFoundError, open_index

    try:
        return open_index(
            settings.index_dir,
            embedding_model=settings.embedding_model,
            embedding_backend=settings.embedding_backend,
            embedding_precision=settings.embedding_precision,
            cache_dir=settings.cache_dir,
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
            chroma_url=settings.chroma_url,
            database_url=settings.database_url,
            collection=settings.collection,
            check_model=check_model,
        )
    except (IndexStoreError, ModelNotFoundError) as exc:
        raise fail(str(exc)) from None


class _RichProgress:
    """Maps a library's `progress(phase, done, total)` calls (the indexer's, the evaluation's)
    onto a rich progress display, one bar per phase."""

    INDEX_LABELS = {"reading": "Reading articles", "indexing": "Indexing", "pruning": "Pruning"}
    EVAL_LABELS = {
        "articleqa": "Evaluating Article QA",
        "baseline-index": "Indexing the baseline recipe",
        "baseline": "Evaluating the baseline",
    }

    def __init__(self, progress: Progress, labels: dict[str, str] = INDEX_LABELS):
        self.progress = progress
        self.labels = labels
        self.tasks: dict[str, int] = {}

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(self.labels.get(phase, phase), total=total)
        self.progress.update(self.tasks[phase], completed=done, total=total)


@app.command("index")
def index_command(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Files, folders (recursive) and http(s) URLs of article pages, news feeds (RSS, Atom) and "
            "sitemaps; a feed or sitemap stands for the articles it lists (also as a named .xml/.rss/.atom file)."
        ),
    ],
    index_dir: IndexDir = None,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Remove indexed articles not found in these inputs (skipped on a run where any input failed).",
        ),
    ] = False,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="Build a new index from these inputs beside the live one and switch to it when complete; abandoned, keeping the old index, if any input fails (needed after changing the embedding model).",
        ),
    ] = False,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            help="File name glob to skip in folders (repeatable; default: LICENSE*, README*, hidden files).",
        ),
    ] = None,
    chroma_url: ChromaUrl = None,
    database_url: DatabaseUrl = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="List skipped files (excluded or unsupported) by name, and say how the embedding model ran.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Index articles: new ones are added, changed ones replaced, unchanged ones skipped.

    Formats: .txt/.md (first line is the headline, optional YAML front matter), .html/.htm,
    .json/.jsonl (objects with title and body), article URLs, and news feeds and sitemaps
    (URLs or named .xml/.rss/.atom files: every article they list is read). Exit code 1 when any
    input failed (the rest is still indexed), 130 when interrupted (re-run to finish).
    One process writes to an index at a time: a second one waits for the first.
    """
    from articleqa.index import DEFAULT_EXCLUDES, IndexStoreError, index_paths, rebuild_index

    settings = settings_from(index_dir=index_dir, chroma_url=chroma_url, database_url=database_url)
    store = open_store(settings, check_model=not rebuild)
    show = not quiet and not as_json
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not show,
        transient=True,
    )
    options = {
        "exclude": tuple(exclude) if exclude else DEFAULT_EXCLUDES,
        "fetch": settings.fetch_policy(),
        "progress": _RichProgress(progress),
        "on_wait": lambda: console.print(
            f"waiting for another process writing to {store.folder.where()} ...", highlight=False
        ),
    }
    try:
        with progress:
            if rebuild:
                report, store = rebuild_index(store, paths, **options)
            else:
                report = index_paths(store, paths, prune=prune, **options)
    except KeyboardInterrupt:
        what = "the index is as it was before the rebuild" if rebuild else "the index is consistent"
        raise fail(f"interrupted; {what}. Run the same command again to finish.", EXIT_INTERRUPTED) from None
    except IndexStoreError as exc:  # a server lost mid-run: what was written is whole or not visible
        what = "The index is as it was before the rebuild" if rebuild else "The articles written so far are complete"
        raise fail(f"{exc}. {what}; run the same command again to finish.", EXIT_FAILED_INPUT) from None
    finally:
        store.close()
    if as_json:
        out.print_json(json.dumps({**report.model_dump(mode="json"), "summary": report.summary()}))
    else:
        _print_report(report, verbose)
        note = getattr(store.embeddings, "backend_note", "")
        if verbose and note:  # empty when nothing needed embedding (the model never loaded)
            console.print(f"embedding model: {note}", highlight=False)
    if report.failed:
        raise typer.Exit(EXIT_FAILED_INPUT)


def printable(text: str) -> str:
    """`text` with control characters (newlines, terminal escapes) written as escapes: a file
    name must not clear the screen or forge a line of the report."""
    from rich.markup import escape  # and "[red]" in a name is text, not a colour

    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return escape(text)


def _print_report(report, verbose: bool) -> None:
    for failure in report.failed:
        console.print(f"[red]failed[/] {printable(failure.origin)}: {printable(failure.reason)}", highlight=False)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if verbose:
        for skipped in report.skipped:
            console.print(
                f"[yellow]skipped[/] {printable(skipped.origin)}: {printable(skipped.reason)}", highlight=False
            )
    elif report.skipped:
        console.print(f"skipped {len(report.skipped)} file(s) in folders (--verbose lists them)")
    s = report.summary()
    table = Table(title=f"Index {report.index_dir}", show_header=True)
    for column in ("added", "updated", "unchanged", "removed", "failed", "chunks added", "chunks deleted", "seconds"):
        table.add_column(column, justify="right")
    table.add_row(
        *(
            str(s[k])
            for k in ("added", "updated", "unchanged", "removed", "failed", "chunks_added", "chunks_deleted", "seconds")
        )
    )
    out.print(table)


def parse_every(every: str) -> float:
    """--every through `index.watch.parse_interval`: seconds, or a usage error naming the forms."""
    from articleqa.index.watch import parse_interval

    try:
        return parse_interval(every)
    except ValueError as exc:
        raise fail(f"--every: {exc}") from None


def open_writer(settings: Settings):
    """The index for a long-running writer (`watch`): chunked as the index was built (its
    manifest), so that following feeds never re-chunks the articles already indexed."""
    from articleqa.index.store import read_manifest

    manifest = read_manifest(settings.index_dir, settings.database_url)
    if manifest is not None:
        settings = settings.model_copy(
            update={"chunk_size": manifest.chunk_size, "chunk_overlap": manifest.chunk_overlap}
        )
    return open_store(settings)


def poll_line(result) -> str:
    """A poll's line for the terminal: local time, then `index.watch.PollResult.line`."""
    from datetime import datetime

    colour = {"new": "green", "updated": "green", "failed": "red", "waiting": "yellow"}.get(result.outcome)
    line = printable(result.line())
    return f"{datetime.now():%Y-%m-%d %H:%M:%S} " + (f"[{colour}]{line}[/]" if colour else line)


def _print_subscriptions(subscriptions) -> None:
    table = Table(title="Subscriptions", show_header=True)
    for column in ("url", "added", "last poll", "articles added", "updated", "last error"):
        table.add_column(column)
    for sub in subscriptions:
        when = f"{sub.last_poll_at:%Y-%m-%d %H:%M} UTC" if sub.last_poll_at else "never"
        table.add_row(
            printable(sub.url),
            f"{sub.added_at:%Y-%m-%d}",
            when,
            str(sub.articles_added),
            str(sub.articles_updated),
            printable(sub.last_error or ""),
        )
    out.print(table)


@app.command("watch")
def watch_command(
    sources: Annotated[
        list[str] | None,
        typer.Argument(
            help="News feed (RSS, Atom) or sitemap URLs to follow; they are added to the index's subscriptions. "
            "None: poll the subscriptions."
        ),
    ] = None,
    every: EveryOpt = DEFAULT_WATCH_EVERY,
    once: Annotated[bool, typer.Option("--once", help="Poll once and exit (for cron).")] = False,
    list_only: Annotated[bool, typer.Option("--list", help="List the subscriptions and exit.")] = False,
    remove: Annotated[
        list[str] | None,
        typer.Option("--remove", help="Stop following this URL (repeatable; its articles stay indexed) and exit."),
    ] = None,
    index_dir: IndexDir = None,
    chroma_url: ChromaUrl = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Follow news feeds and sitemaps: index new and changed articles as they appear.

    Each poll prints one line per feed (new, updated, unchanged, failed). Unchanged feeds cost
    one conditional request; entries seen before are not fetched again. Exit code 130 on
    Ctrl-C (the index stays consistent); with --once, 1 when a feed or article failed.
    """
    seconds = parse_every(every)
    settings = settings_from(index_dir=index_dir, chroma_url=chroma_url, database_url=database_url)
    from articleqa.index.subscriptions import SubscriptionStore

    subscriptions = SubscriptionStore.for_index(settings.index_dir, settings.database_url)
    try:
        if remove:
            for url in remove:
                if not subscriptions.remove(url):
                    raise fail(f"{url!r} is not followed (articleqa watch --list shows the subscriptions)")
                console.print(f"stopped following {printable(url)}", highlight=False)
            return
        if list_only:
            _print_subscriptions(subscriptions.list())
            return
        try:
            for url in subscriptions.add(sources or []):
                console.print(f"following {printable(url)}", highlight=False)
        except ValueError as exc:
            raise fail(str(exc)) from None
        if not subscriptions.list():
            raise fail("no feeds to watch: name feed or sitemap URLs, e.g. articleqa watch https://example.org/rss.xml")
        _watch(settings, subscriptions, seconds, once)
    finally:
        subscriptions.close()


def _watch(settings: Settings, subscriptions, seconds: float, once: bool) -> None:
    from articleqa.index.watch import Poller, index_into

    store = open_writer(settings)

    def on_wait() -> None:
        console.print(f"waiting for another process writing to {store.folder.where()} ...", highlight=False)

    poller = Poller(
        subscriptions,
        index_into(store, on_wait=on_wait),
        policy=settings.fetch_policy(),
        host_delay=settings.watch_host_delay,
        every=seconds,
    )
    results = []

    def show(result) -> None:
        results.append(result)
        out.print(poll_line(result), highlight=False)
        out.file.flush()  # one line per poll, as it happens, also into a pipe or a log file
        for failure in result.failed[1:] if result.error is None else result.failed:
            console.print(f"  [red]failed[/] {printable(failure.origin)}: {printable(failure.reason)}", highlight=False)

    if not once:
        feeds = len(subscriptions.list())
        console.print(f"watching {feeds} feed(s), polling every {printable(interval_text(seconds))} (Ctrl-C stops)")
    try:
        poller.run(show, once=once)
    except KeyboardInterrupt:
        raise fail(
            "interrupted; the index is consistent. Run the same command again to go on.", EXIT_INTERRUPTED
        ) from None
    finally:
        store.close()
    if once and any(r.outcome == "failed" for r in results):
        raise typer.Exit(EXIT_FAILED_INPUT)


def interval_text(seconds: float) -> str:
    """Seconds as the --every form ("15m", "1h30m", "45s")."""
    whole = int(seconds)
    parts = [(whole // 3600, "h"), (whole % 3600 // 60, "m"), (whole % 60, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or f"{seconds:g}s"


def open_qa(settings: Settings, **options: object):
    """An ArticleQA over the configured index (`options`: more `ArticleQA.from_options`
    arguments), or a clear error."""
    from articleqa.index import IndexStoreError, ModelNotFoundError
    from articleqa.qa.api import ArticleQA, QAError

    try:
        return ArticleQA.from_options(settings.index_dir, settings.qa_options(), **options)
    except (QAError, IndexStoreError, ModelNotFoundError) as exc:
        raise fail(str(exc)) from None


def _filter_failure(exc) -> typer.Exit:
    """A `qa.retrieval.FilterError` worded for the command line (the flag, not the field)."""
    if exc.field == "range":
        return fail(str(exc))
    return fail(f"--{exc.field} {exc.value!r} is not a date; use {exc.expected}, e.g. 2020-03-15")


def parse_day(value: str | None, flag: str):
    """A date option (`flag`: "--today" etc.) through `qa.retrieval.parse_date`."""
    from articleqa.qa.retrieval import FilterError, parse_date

    try:
        return parse_date(value, flag.lstrip("-"))
    except FilterError as exc:
        raise _filter_failure(exc) from None


def build_filters(sources: list[str] | None, after: str | None, before: str | None):
    """--source/--after/--before through `qa.retrieval.parse_filters` (shared with the web app)."""
    from articleqa.qa.retrieval import FilterError, parse_filters

    try:
        return parse_filters(sources, after, before)
    except FilterError as exc:
        raise _filter_failure(exc) from None


def print_answer(answer, *, text: bool = True) -> None:
    """The answer, then its numbered sources (or the related passages when it abstained)."""
    if text:
        out.print(answer.text, highlight=False, markup=False)
    listed = answer.citations if answer.grounded else answer.related
    if not listed:
        return
    out.print()
    out.print("[bold]Sources[/]" if answer.grounded else "[bold]Related passages[/] (not an answer)")
    for c in listed:
        meta = ", ".join(x for x in (c.source, str(c.published_at) if c.published_at else None) if x)
        label = f"[{c.n}]" if answer.grounded else "-"
        out.print(f"{label} [bold]{c.title}[/]" + (f" ({meta})" if meta else ""), highlight=False)
        if c.url:
            out.print(f"    {c.url}", highlight=False, soft_wrap=True)
        out.print(f"    “{c.quote}” (chars {c.start}-{c.end} of {c.article_id})", highlight=False)


def stream_answer(qa, question: str, **kwargs):
    """Print an LLM answer's tokens as they arrive, then the verified answer's sources.

    The verified text replaces the streamed one when verification changed it or the LLM
    failed; notes (what was removed or flagged, why the extractive answer is shown) go to
    stderr.
    """
    streamed = []
    answer = None
    for event in qa.stream(question, **kwargs):
        if event.kind == "delta":
            streamed.append(event.text)
            out.print(event.text, end="", markup=False, highlight=False)
            out.file.flush()
        elif event.kind == "answer":
            answer = event.answer
    if streamed:
        out.print()
    for note in answer.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    if " ".join("".join(streamed).split()) != " ".join(answer.text.split()):
        if streamed:
            out.print()
            out.print("[bold]Verified answer[/]" if answer.answerer == "llm" else "[bold]Extractive answer[/]")
        print_answer(answer)
    else:
        print_answer(answer, text=False)
    return answer


@app.command("ask")
def ask_command(
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    index_dir: IndexDir = None,
    k: KOpt = None,
    source: SourceOpt = None,
    after: AfterOpt = None,
    before: BeforeOpt = None,
    today: TodayOpt = None,
    chroma_url: ChromaUrl = None,
    database_url: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer with its citations as JSON.")] = False,
    llm: LlmOpt = None,
    llm_base_url: LlmBaseUrlOpt = None,
    llm_timeout: LlmTimeoutOpt = None,
) -> None:
    """Answer one question from the indexed articles, citing the quoted passages."""
    from articleqa.qa.api import QAError

    settings = settings_from(
        index_dir=index_dir,
        chroma_url=chroma_url,
        database_url=database_url,
        k=k,
        llm=llm,
        llm_base_url=llm_base_url,
        llm_timeout=llm_timeout,
    )
    filters = build_filters(source, after, before)
    day = parse_day(today, "--today")
    qa = open_qa(settings)
    try:
        if qa.llm and not as_json:  # tokens are printed as they arrive
            stream_answer(qa, question, filters=filters, today=day)
            return
        answer = qa.ask(question, filters=filters, today=day)
    except (QAError, ValueError) as exc:
        raise fail(str(exc)) from None
    finally:
        qa.close()
    if as_json:
        out.print_json(answer.model_dump_json())
    else:
        print_answer(answer)


@app.command("chat")
def chat_command(
    index_dir: IndexDir = None,
    k: KOpt = None,
    source: SourceOpt = None,
    after: AfterOpt = None,
    before: BeforeOpt = None,
    today: TodayOpt = None,
    chroma_url: ChromaUrl = None,
    database_url: DatabaseUrl = None,
    llm: LlmOpt = None,
    llm_base_url: LlmBaseUrlOpt = None,
    llm_timeout: LlmTimeoutOpt = None,
) -> None:
    """A conversation in the terminal: follow-up questions use the previous turns.

    Type a question and press Enter; /clear forgets the conversation, /quit (or Ctrl-D) ends.
    """
    from articleqa.qa.api import QAError

    settings = settings_from(
        index_dir=index_dir,
        chroma_url=chroma_url,
        database_url=database_url,
        k=k,
        llm=llm,
        llm_base_url=llm_base_url,
        llm_timeout=llm_timeout,
    )
    filters = build_filters(source, after, before)
    day = parse_day(today, "--today")
    qa = open_qa(settings)
    history = []
    console.print("Ask about the indexed articles. /clear starts over, /quit ends.", highlight=False)
    try:
        while True:
            try:
                question = input("\n> ").strip()
            except EOFError:
                break
            if not question:
                continue
            if question in {"/quit", "/exit"}:
                break
            if question == "/clear":
                history.clear()
                console.print("(conversation cleared)")
                continue
            try:
                if qa.llm:
                    answer = stream_answer(qa, question, history=history, filters=filters, today=day)
                else:
                    answer = qa.ask(question, history=history, filters=filters, today=day)
                    print_answer(answer)
            except (QAError, ValueError) as exc:
                console.print(f"[red]error:[/] {exc}", highlight=False)
                continue
            history.append(qa.turn(question, answer))
    except KeyboardInterrupt:
        pass
    finally:
        qa.close()


@app.command("eval")
def eval_command(
    questions: Annotated[
        Path,
        typer.Argument(
            help="Questions, one JSON object a line: id, question, answer, article_ids, type (factoid or null)."
        ),
    ],
    articles: Annotated[
        Path | None, typer.Option("--articles", help="Articles JSONL to index (incrementally) first.")
    ] = None,
    index_dir: IndexDir = None,
    k: KOpt = None,
    mode: Annotated[
        str, typer.Option("--mode", help=f"Retrieval: {', '.join(RETRIEVAL_MODES)}.")
    ] = DEFAULT_RETRIEVAL_MODE,
    baseline: Annotated[
        bool,
        typer.Option(
            "--baseline",
            help="Also run the LangChain tutorial recipe on the same articles and questions, side by side.",
        ),
    ] = False,
    chroma_url: ChromaUrl = None,
    database_url: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full report as JSON.")] = False,
) -> None:
    """Evaluate retrieval and answers on a question set (hits@k, accuracy, abstention, latency).

    --baseline adds the usual LangChain RAG recipe (RecursiveCharacterTextSplitter 1000/200,
    the same embedding model, Chroma.from_documents, similarity_search, the top chunk as the
    answer) over the same articles, in the same run.
    """
    if mode not in RETRIEVAL_MODES:
        raise fail(f"--mode {mode!r} is not one of {', '.join(RETRIEVAL_MODES)}")
    from articleqa.qa.evaluation import evaluate_qa, load_questions

    settings = settings_from(index_dir=index_dir, chroma_url=chroma_url, database_url=database_url, k=k)
    try:
        qs = load_questions(questions)
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from None
    if articles is not None:
        from articleqa.index import index_paths

        store = open_store(settings)
        try:
            report = index_paths(store, [articles])
        finally:
            store.close()
        if report.failed:
            raise fail("; ".join(f"{f.origin}: {f.reason}" for f in report.failed[:5]), EXIT_FAILED_INPUT)
    qa = open_qa(settings, retrieval_mode=mode)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
        transient=True,
    )
    try:
        with progress:
            run = evaluate_qa(qa, qs, baseline=baseline, progress=_RichProgress(progress, _RichProgress.EVAL_LABELS))
    finally:
        qa.close()
    if as_json:
        if baseline:
            out.print_json(json.dumps({name: r.model_dump(mode="json") for name, r in run.reports.items()}))
        else:
            out.print_json(run.reports["articleqa"].model_dump_json())
        return
    _print_eval(run.reports, f"{questions.name}: {run.questions} questions, k={run.k}, {run.mode} retrieval")


_EVAL_ROWS = (
    ("short-answer questions", "factoid", "questions"),
    ("answer in top chunk (hit@1)", "factoid", "answer_hit_at_1"),
    ("answer MRR", "factoid", "answer_mrr"),
    ("answer in top k (hit@k)", "factoid", "answer_hit_at_k"),
    ("gold article in top k", "answerable", "article_hit_at_k"),
    ("answer accuracy (short answers)", "factoid", "answer_accuracy"),
    ("short answer shown first (answered)", "factoid", "short_answer_shown"),
    ("short answer shown is the gold one", "factoid", "short_answer_right"),
    ("yes/no questions", "yes_no", "questions"),
    ("yes/no answered correctly", "yes_no", "answer_accuracy"),
    ("citation precision", "answerable", "citation_precision"),
    ("false abstention (all answerable)", "answerable", "false_abstention_rate"),
    ("both evidence articles cited (2-article)", "answerable", "two_article_both_cited"),
    ("unanswerable questions", "null", "questions"),
    ("abstention on unanswerable", "null", "abstention_rate"),
    ("latency p50 ms", "overall", "latency_p50_ms"),
    ("latency p95 ms", "overall", "latency_p95_ms"),
)


def _print_eval(reports: dict, title: str) -> None:
    table = Table(title=title)
    table.add_column("metric")
    for name in reports:
        table.add_column(name, justify="right")
    for label, group, field in _EVAL_ROWS:
        cells = []
        for report in reports.values():
            metrics = report.overall if group == "overall" else report.by_type[group]
            value = getattr(metrics, field)
            cells.append(
                "-"
                if value is None
                else f"{value:.3f}"
                if isinstance(value, float) and "latency" not in field
                else str(value)
            )
        table.add_row(label, *cells)
    out.print(table)


@app.command("serve")
def serve_command(
    index_dir: IndexDir = None,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind; 0.0.0.0 exposes the app to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 7860,
    auth: Annotated[str | None, typer.Option("--auth", help="Require a login, as user:password.")] = None,
    k: KOpt = None,
    chroma_url: ChromaUrl = None,
    database_url: DatabaseUrl = None,
    llm: LlmOpt = None,
    llm_base_url: LlmBaseUrlOpt = None,
    llm_timeout: LlmTimeoutOpt = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Also poll the index's feed subscriptions (articleqa watch URL adds them; so does the "
            "Articles tab) in the background, every --every, and index what they bring.",
        ),
    ] = False,
    every: EveryOpt = DEFAULT_WATCH_EVERY,
) -> None:
    """Start the web chat (Gradio) on http://HOST:PORT; the index folder is created if missing."""
    watch_every = parse_every(every) if watch else None
    credentials = None
    if auth is not None:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise fail(f"--auth {auth!r} is not user:password")
        credentials = (user, password)
    settings = settings_from(
        index_dir=index_dir,
        chroma_url=chroma_url,
        database_url=database_url,
        k=k,
        llm=llm,
        llm_base_url=llm_base_url,
        llm_timeout=llm_timeout,
    )
    if host not in {"127.0.0.1", "localhost", "::1"} and credentials is None:
        console.print(
            f"[yellow]warning:[/] serving on {host} without --auth: anyone who can reach it can "
            "read and change the index",
            highlight=False,
        )
    from articleqa.index import IndexStoreError, ModelNotFoundError
    from articleqa.qa.api import QAError
    from articleqa.ui.app import serve

    console.print(f"Article QA on http://{host}:{port} (index: {settings.index_dir}; Ctrl-C stops it)", highlight=False)
    if watch_every is not None:
        console.print(f"polling the feed subscriptions every {interval_text(watch_every)}", highlight=False)
    try:
        serve(
            settings.index_dir,
            host=host,
            port=port,
            auth=credentials,
            options=settings.qa_options(),
            fetch=settings.fetch_policy(),
            watch_every=watch_every,
            host_delay=settings.watch_host_delay,
            on_poll=lambda result: console.print(poll_line(result), highlight=False),
        )
    except (IndexStoreError, ModelNotFoundError, QAError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot serve on {host}:{port}: {exc}") from None


@app.command("check")
def check_command(
    index_dir: IndexDir = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Delete chunks found on one side only, and the rows of their articles (index them again to restore).",
        ),
    ] = False,
    chroma_url: ChromaUrl = None,
    database_url: DatabaseUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check that Chroma and the lexical index (SQLite or the database) hold the same chunks.

    Exit code 1 when chunks are on one side only and --repair was not given. Runs under the
    index's write lock, so it waits for an indexer that is running.
    """
    from dataclasses import asdict

    from articleqa.index.consistency import check_index

    settings = settings_from(index_dir=index_dir, chroma_url=chroma_url, database_url=database_url)
    store = open_store(settings)
    try:
        report = check_index(store, repair=repair)
    finally:
        store.close()
    if as_json:
        out.print_json(json.dumps({**asdict(report), "consistent": report.consistent}))
    else:
        out.print(
            f"Chroma: {report.chroma_chunks} chunks; lexical index: {report.lexical_chunks} chunks; "
            f"only in Chroma: {len(report.only_in_chroma)}; only in the lexical index: {len(report.only_in_lexical)}",
            highlight=False,
        )
        for label, ids in (
            ("only in Chroma", report.only_in_chroma),
            ("only in the lexical index", report.only_in_lexical),
        ):
            for chunk_id in ids[:10]:
                out.print(f"  {label}: {chunk_id}", highlight=False)
            if len(ids) > 10:
                out.print(f"  ... and {len(ids) - 10} more {label}", highlight=False)
        if report.articles_to_reindex:
            out.print(
                f"removed; index these {len(report.articles_to_reindex)} article(s) again to restore them: "
                + ", ".join(report.articles_to_reindex),
                highlight=False,
            )
    if not report.consistent and not repair:
        raise typer.Exit(EXIT_FAILED_INPUT)


# The errors of a model that cannot be loaded or run as configured: (module, class name).
_MODEL_ERRORS = (
    ("articleqa.index.embeddings", "ModelNotFoundError"),
    ("articleqa.index.openvino_backend", "BackendUnavailable"),
)


def _model_errors() -> tuple[type[BaseException], ...]:
    """The classes of `_MODEL_ERRORS` whose modules were imported. Importing them here would load
    the model libraries on every run (`--help` included), and an error of a class whose module
    was never imported cannot have been raised."""
    return tuple(getattr(sys.modules[module], name) for module, name in _MODEL_ERRORS if module in sys.modules)


def main() -> None:
    """The `articleqa` command. The embedding model loads on first use, deep inside a command,
    so a model that cannot be loaded or run as configured is reported here: a one-line error
    and exit code 2, not a traceback.

    However the command ends, the heap is frozen first (`gc.freeze`): the interpreter's
    teardown then skips garbage-collecting the million-odd objects the model, Chroma and
    LangChain libraries leave behind, which took about 0.9 of the 4.4 s of a cold `articleqa
    ask` on the 2-core AVX2-only CPU (docs/BENCHMARKS.md, "Cold start"). Nothing is skipped
    that a command relies on: stores are closed and output flushed by the commands themselves,
    and atexit handlers still run."""
    try:
        app()
    except Exception as exc:
        if not isinstance(exc, _model_errors()):
            raise
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(EXIT_USAGE)
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
