"""The index behind the web app: one writer store, and `ArticleQA` readers handed out on lease.

Writes (indexing uploads and URLs, prune, rebuild) run one at a time: one per process under a
lock, and one per index folder under the folder's write lock (`index.folder`), so an
`articleqa index` in another process and the web app never write at once. Questions run on an
`ArticleQA` lent for the duration of the question (`session`); after every write a new one is
made and the old one is closed once its last question has finished.

Another process's writes are noticed on the next question (the folder's change token) and the
stores are reopened: Chroma's embedded client keeps the vectors in memory per process and does
not see them otherwise. That reopening waits for the questions in flight to finish, because
Chroma gives a fresh view only once every client of the folder in this process is closed.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from articleqa.index import (
    DEFAULT_CHUNK_OVERLAP,
    DEFAULT_CHUNK_SIZE,
    SUPPORTED_EXTENSIONS,
    IndexBusyError,
    IndexReport,
    IndexStore,
    IndexStoreError,
    index_paths,
    open_index,
    rebuild_index,
)
from articleqa.index.defaults import DEFAULT_HOST_DELAY
from articleqa.index.indexer import Indexer
from articleqa.index.models import Article, SourceFailure
from articleqa.index.sources import FetchPolicy, is_url
from articleqa.index.store import read_manifest
from articleqa.index.subscriptions import SubscriptionStore
from articleqa.index.watch import Poller, PollResult, Stopped, index_into
from articleqa.qa.api import ArticleQA, EmptyIndexError
from articleqa.qa.options import QAOptions

UPLOADS = "uploads"
# Seconds beyond the LLM timeout that a reopen waits for the questions in flight.
DRAIN_GRACE_S = 30.0
log = logging.getLogger(__name__)
Progress = Callable[[str, int, int | None], None]
# Characters kept in an uploaded file's stored name; anything else becomes "-".
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")

__all__ = ["IndexBusyError", "Library", "safe_upload_name"]


def safe_upload_name(name: str) -> str:
    """The name an uploaded file is stored under: no folders, no control characters or
    newlines, no leading dot, at most 120 characters before the extension.

    Raises:
        ValueError: nothing usable is left of `name`.
    """
    base = Path(name.replace("\\", "/")).name  # drops any folder part, "../" included
    stem, suffix = Path(base).stem, Path(base).suffix.lower()
    stem = _UNSAFE_NAME.sub("-", stem).strip(" .-")[:120]
    if not stem:
        raise ValueError(f"{name!r} is not a usable file name")
    return stem + suffix


@dataclass
class Library:
    """The index folder the app serves, with its settings.

    `options`: how the index is opened and questions answered (`Settings.qa_options()`);
    `fetch`: the limits uploads and URLs are read under; `chunk_size` and `chunk_overlap`:
    None keeps the ones the index was built with.
    """

    index_dir: Path
    options: QAOptions = field(default_factory=QAOptions)
    fetch: FetchPolicy = field(default_factory=FetchPolicy)
    chunk_size: int | None = None
    chunk_overlap: int | None = None
    store: IndexStore = field(init=False)
    _qa: ArticleQA | None = field(init=False, default=None)
    _leases: dict[int, int] = field(init=False, default_factory=dict)
    _retired: list[ArticleQA] = field(init=False, default_factory=list)
    _token: str = field(init=False, default="")
    _write_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _state: threading.Condition = field(init=False, default_factory=threading.Condition)
    _subscriptions: SubscriptionStore | None = field(init=False, default=None)
    _watcher: threading.Thread | None = field(init=False, default=None)
    _stop_watching: threading.Event = field(init=False, default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.index_dir = Path(self.index_dir).expanduser().resolve()
        self.store = self._open_store()
        with self._state:
            self._replace_qa()

    def _open_store(self) -> IndexStore:
        # Chunking settings default to the ones the index was built with, so that adding a
        # file never re-chunks the whole index as a side effect.
        manifest = read_manifest(self.index_dir, self.options.database_url)
        chunk_size = self.chunk_size or (manifest.chunk_size if manifest else DEFAULT_CHUNK_SIZE)
        chunk_overlap = (
            self.chunk_overlap
            if self.chunk_overlap is not None
            else (manifest.chunk_overlap if manifest else DEFAULT_CHUNK_OVERLAP)
        )
        # Creates the folder when missing; the model loads on first use only.
        options = self.options
        store = open_index(
            self.index_dir,
            embedding_model=options.embedding_model,
            embedding_backend=options.embedding_backend,
            embedding_precision=options.embedding_precision,
            cache_dir=options.cache_dir,
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            chroma_url=options.chroma_url,
            database_url=options.database_url,
            collection=options.collection,
        )
        store.on_stale = self._reopen_everything
        return store

    # ---- questions ----------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[ArticleQA | None]:
        """An `ArticleQA` for one question (None while the index holds no articles); it stays
        open until the block ends, even if a write replaces it meanwhile."""
        qa = self._acquire()
        try:
            yield qa
        finally:
            if qa is not None:
                self._release(qa)

    def qa(self) -> ArticleQA | None:
        """The current `ArticleQA` (None while the index holds no articles), after picking up
        other processes' writes. Without a lease: for one-off use; answer through `session`."""
        qa = self._acquire()
        if qa is not None:
            self._release(qa)
        return qa

    def _acquire(self) -> ArticleQA | None:
        with self._state:
            if not self._write_lock.locked() and self.store.folder.token() != self._token:
                self._reopen_everything()
            qa = self._qa
            if qa is not None:
                self._leases[id(qa)] = self._leases.get(id(qa), 0) + 1
            return qa

    def _release(self, qa: ArticleQA) -> None:
        with self._state:
            left = self._leases.get(id(qa), 1) - 1
            if left > 0:
                self._leases[id(qa)] = left
                return
            self._leases.pop(id(qa), None)
            if qa in self._retired:
                self._retired.remove(qa)
                qa.close()
            self._state.notify_all()

    def _replace_qa(self) -> None:
        """Open a new `ArticleQA` on the live data; the old one closes after its last question.
        Call with `_state` held."""
        try:
            fresh: ArticleQA | None = ArticleQA.from_options(self.index_dir, self.options)
        except EmptyIndexError:
            fresh = None
        old, self._qa = self._qa, fresh
        if old is not None:
            if self._leases.get(id(old)):
                self._retired.append(old)
            else:
                old.close()
        # The writer store's token: taken under the write lock at the end of its last write
        # (or when it was opened), so that any later write elsewhere still counts as a change.
        self._token = self.store.token

    def _reopen_everything(self) -> None:
        """Another process wrote: close every store of this folder (after the questions in
        flight), so that Chroma's next client reads the folder afresh, and open them again."""
        with self._state:
            # A question holds its lease for its whole answer (an LLM's included); one that was
            # abandoned without closing must not hold every later question up for ever.
            drained = self._state.wait_for(
                lambda: not any(self._leases.values()), timeout=self.options.llm_timeout + DRAIN_GRACE_S
            )
            if not drained:
                log.warning(
                    "reopening the index with %d question(s) still holding the old one", sum(self._leases.values())
                )
                self._leases.clear()
            for qa in [*self._retired, *([self._qa] if self._qa else [])]:
                qa.close()
            self._retired.clear()
            self._qa = None
            self.store.reopen()
            self._replace_qa()

    # ---- reading ------------------------------------------------------------------------

    @property
    def uploads_dir(self) -> Path:
        return self.index_dir / UPLOADS

    @property
    def writing(self) -> bool:
        return self._write_lock.locked()

    def articles(self, query: str = "") -> list[list[str]]:
        """Rows (title, source, date, id) of the indexed articles, newest first; `query`
        keeps rows containing every one of its words (case-insensitive)."""
        words = query.lower().split()
        rows = []
        for a in self.store.articles.list():
            row = [a.title, a.source or "", a.published_at.isoformat() if a.published_at else "", a.id]
            hay = " ".join(row).lower()
            if all(w in hay for w in words):
                rows.append(row)
        return rows

    def sources(self) -> list[str]:
        return self.store.articles.sources()

    def date_range(self) -> tuple[date | None, date | None]:
        """The earliest and latest publication dates of the indexed articles."""
        return self.store.articles.date_range()

    def stats(self) -> dict[str, object]:
        """What the web app shows about the index. No file-system paths: where the index
        lives is the operator's business, not every visitor's."""
        return {
            "articles": self.store.articles.count(),
            "chunks": self.store.articles.chunk_total(),
            "sources": len(self.sources()),
            "embedding model": self.options.embedding_model,
            # Filled in once the model has run (it loads on first use).
            "embedding backend": getattr(self.store.embeddings, "backend_note", "") or "not loaded yet",
            "vector store": "Chroma server" if self.options.chroma_url else "embedded Chroma",
        }

    def get_article(self, article_id: str):
        return self.store.articles.get(article_id)

    # ---- writing ------------------------------------------------------------------------

    @contextmanager
    def _writing(self, wait: bool = False) -> Iterator[None]:
        """One write at a time in this process; readers get a new `ArticleQA` afterwards.
        A request is refused while another write runs; `wait` (the feed poller) waits instead."""
        if not self._write_lock.acquire(blocking=wait):
            raise IndexBusyError("the index is being updated by another request; try again when it finishes")
        try:
            yield
            with self._state:
                self._replace_qa()
        finally:
            self._write_lock.release()

    def add(
        self,
        files: Sequence[str | Path],
        urls: Sequence[str],
        progress: Progress | None = None,
        *,
        replace: bool = False,
        names: Sequence[str] | None = None,
    ) -> IndexReport:
        """Index uploaded files and URLs, incrementally: nothing already indexed is removed.

        Files are copied into `uploads/` in the index folder under a safe version of their
        name (`safe_upload_name`), so their articles get stable ids (the name without
        extension) and an origin that stays on disk. A file whose name is taken by an earlier
        upload is refused unless `replace`; a copy whose file could not be read is deleted.

        Args:
            files: The uploaded files (temporary paths).
            urls: Article URLs (fetched under `self.fetch`).
            replace: Let an upload replace the earlier upload of the same name.
            names: The names the user gave the files (default: the files' own names).
        """
        with self._writing():
            inputs: list[str] = []
            copies: list[tuple[Path, Path | None]] = []  # (copy, the file it replaced, kept aside)
            rejected: list[tuple[str, str]] = []
            for f, given in zip(files, names or [Path(f).name for f in files], strict=True):
                reason, dest = self._check_upload(Path(f), given, replace)
                if reason:
                    rejected.append((given, reason))
                    continue
                self.uploads_dir.mkdir(parents=True, exist_ok=True)
                kept = None
                if dest.exists():
                    kept = dest.with_name(f".{dest.name}.replaced")
                    dest.replace(kept)
                shutil.copyfile(f, dest)
                copies.append((dest, kept))
                inputs.append(str(dest))
            for url in urls:
                url = url.strip()
                if not url:
                    continue
                if not is_url(url):
                    rejected.append((url, "not an http:// or https:// URL"))
                    continue
                inputs.append(url)
            try:
                report = (
                    index_paths(self.store, inputs, fetch=self.fetch, progress=progress, wait=0)
                    if inputs
                    else IndexReport(index_dir=str(self.index_dir))
                )
            except BaseException:  # e.g. another process is writing: keep only what got indexed
                indexed = set(self.store.articles.origins().values())
                failed_origins = {str(c.resolve()) for c, _ in copies} - indexed
                raise
            else:
                report.failed.extend(SourceFailure(origin=o, reason=r) for o, r in rejected)
                failed_origins = {f.origin for f in report.failed}
            finally:
                self._settle_copies(copies, failed_origins)
            return self._without_server_paths(report)

    def _without_server_paths(self, report: IndexReport) -> IndexReport:
        """The report as visitors see it: uploads named `uploads/NAME`, not by their path on
        the server (which is the operator's business)."""
        prefix = str(self.index_dir) + "/"

        def public(text: str) -> str:
            return text.replace(prefix, "")

        report.failed = [SourceFailure(origin=public(f.origin), reason=public(f.reason)) for f in report.failed]
        report.skipped = [SourceFailure(origin=public(f.origin), reason=public(f.reason)) for f in report.skipped]
        report.index_dir = ""
        return report

    @staticmethod
    def _settle_copies(copies: list[tuple[Path, Path | None]], failed_origins: set[str]) -> None:
        """Keep the copies that were indexed; put back the earlier upload of the others."""
        for copy, kept in copies:
            if str(copy.resolve()) in failed_origins:
                # Not indexed: the earlier upload (still indexed) comes back, or nothing.
                copy.unlink(missing_ok=True)
                if kept is not None:
                    kept.replace(copy)
            elif kept is not None:
                kept.unlink(missing_ok=True)

    def _check_upload(self, path: Path, given: str, replace: bool) -> tuple[str | None, Path]:
        """Why an uploaded file cannot be stored (None: it can), and where it goes."""
        try:
            name = safe_upload_name(given)
        except ValueError as exc:
            return str(exc), self.uploads_dir
        dest = self.uploads_dir / name
        suffix = Path(name).suffix
        if suffix not in SUPPORTED_EXTENSIONS:
            return (
                f"unsupported file type {suffix or '(none)'!r} (supported: {', '.join(SUPPORTED_EXTENSIONS)})",
                dest,
            )
        try:
            size = path.stat().st_size
        except OSError as exc:
            return f"cannot read the upload: {exc.strerror or exc}", dest
        if size > self.fetch.max_bytes:
            return f"file is {size} bytes, over the limit of {self.fetch.max_bytes} bytes", dest
        if dest.exists() and not replace:
            return (
                f"an upload named {name!r} is already indexed; choose 'replace' to replace it, or rename the file",
                dest,
            )
        return None, dest

    @property
    def shared(self) -> bool:
        """Whether the index is kept in a database that replicas on other machines share."""
        return bool(self.options.database_url)

    def prune(self, progress: Progress | None = None) -> IndexReport:
        """Remove the articles whose file no longer exists (e.g. deleted from `uploads/`).

        Articles read from URLs are kept; nothing is re-read, so ids never change.

        Raises:
            IndexStoreError: The index is shared (`shared`): its articles' files lie on the
                machines that indexed them, where this process cannot look, so every one of
                them would look deleted.
        """
        if self.shared:
            raise IndexStoreError(
                "pruning by missing files is not available for an index shared through a database: "
                "the files of its articles are on the machines that indexed them, not necessarily on "
                "this one. Run `articleqa index INPUTS --prune` on the machine that holds the files"
            )
        with self._writing(), self.store.write_session(wait=0):
            report = IndexReport(index_dir=str(self.index_dir))
            keep = {
                aid for aid, origin in self.store.articles.origins().items() if is_url(origin) or Path(origin).exists()
            }
            Indexer(self.store, progress).prune(keep, lambda origin: False, report)
            return report

    def rebuild(self, progress: Progress | None = None) -> IndexReport:
        """Chunk and embed every stored article again, from its stored text, into a new index
        that replaces the live one once it is complete (`index.rebuild_index`).

        Ids, origins and texts are unchanged; chunks and embeddings are made anew (after a
        change of chunking settings, or to repair an index). Questions are answered from
        the old index meanwhile; a rebuild that fails or is killed leaves it as it was.
        """
        with self._writing():
            started = time.perf_counter()
            report, store = rebuild_index(self.store, None, progress=progress, wait=0)
            store.on_stale = self._reopen_everything
            self.store = store
            report.seconds = time.perf_counter() - started
            return report

    # ---- feeds ----------------------------------------------------------------------------

    @property
    def subscriptions(self) -> SubscriptionStore:
        """The feeds this index follows (`subscriptions.sqlite` in the index folder, or the
        index's database: the list `articleqa watch` polls too), opened on first use."""
        if self._subscriptions is None:
            self._subscriptions = SubscriptionStore.for_index(self.index_dir, self.options.database_url)
        return self._subscriptions

    def subscription_rows(self) -> list[list[str]]:
        """Rows (url, last poll, last error, articles added, updated) for the web app."""
        rows = []
        for sub in self.subscriptions.list():
            polled = f"{sub.last_poll_at:%Y-%m-%d %H:%M} UTC" if sub.last_poll_at else "not yet"
            rows.append([sub.url, polled, sub.last_error or "", str(sub.articles_added), str(sub.articles_updated)])
        return rows

    def follow(self, url: str) -> bool:
        """Add a feed or sitemap URL to the subscriptions; False when it was already followed.

        Raises:
            ValueError: not an http(s) URL.
        """
        return bool(self.subscriptions.add([url]))

    def unfollow(self, url: str) -> bool:
        """Stop following a feed (its articles stay indexed); False when it was not followed."""
        return self.subscriptions.remove(url)

    def add_articles(self, articles: Sequence[Article]) -> IndexReport:
        """Index articles the feed poller read, incrementally; waits for a write in progress
        (an upload, another process's `articleqa index`) rather than failing."""
        with self._writing(wait=True):
            return index_into(self.store)(articles)

    @property
    def watching(self) -> bool:
        return self._watcher is not None and self._watcher.is_alive()

    def start_watching(
        self,
        every: float,
        *,
        host_delay: float = DEFAULT_HOST_DELAY,
        on_poll: Callable[[PollResult], None] | None = None,
    ) -> None:
        """Poll the subscriptions every `every` seconds in a background thread, indexing what
        they bring (`index.watch.Poller`), until `close`."""
        if self.watching:
            return
        poller = Poller(
            self.subscriptions,
            self.add_articles,
            policy=self.fetch,
            host_delay=host_delay,
            every=every,
            stop=self._stop_watching,
        )

        def loop() -> None:
            while not self._stop_watching.is_set():
                try:
                    poller.run(on_poll or (lambda result: log.info("%s", result.line())))
                    return
                except Stopped:
                    return
                except Exception:  # noqa: BLE001 -- the poller must outlive one bad poll
                    log.exception("polling the feeds failed; trying again in %ss", every)
                    self._stop_watching.wait(every)

        self._watcher = threading.Thread(target=loop, name="articleqa-watch", daemon=True)
        self._watcher.start()

    def stop_watching(self, timeout: float | None = None) -> None:
        """Stop the poller: it abandons the request or wait in progress and ends; an indexing
        batch in progress is finished first (at most `timeout` seconds are waited)."""
        self._stop_watching.set()
        if self._watcher is not None:
            self._watcher.join(timeout if timeout is not None else self.fetch.timeout + DRAIN_GRACE_S)
            if self._watcher.is_alive():
                log.warning("the feed poller did not stop in time; closing the index under it")
            self._watcher = None

    def close(self) -> None:
        """Stop the feed poller, then close every store; questions still running on them fail."""
        self.stop_watching()
        if self._subscriptions is not None:
            self._subscriptions.close()
        with self._state:
            for qa in [*self._retired, *([self._qa] if self._qa else [])]:
                try:
                    qa.close()
                except Exception:  # noqa: BLE001 -- closing is best effort
                    pass
            self._retired.clear()
            self._leases.clear()
            self._qa = None
        self.store.close()
