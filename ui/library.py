"""The index behind the web app: one writer store, a read-only `ArticleQA` reopened after writes.

Writes (indexing uploads and URLs, prune, rebuild) run one at a time under a lock, on the
writer store. Questions go to a separate `ArticleQA` (its own SQLite connections on the same
folder, so a question asked while indexing reads committed data only); it is reopened after
every write, so the app becomes usable after the first upload without a restart. An
`ArticleQA` that was replaced is closed only when the app closes, since a question may still
be running on it.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from index import (
    DEFAULT_COLLECTION,
    DEFAULT_MODEL,
    SUPPORTED_EXTENSIONS,
    IndexReport,
    IndexStore,
    index_paths,
    open_index,
)
from index.embeddings import Backend
from index.indexer import Indexer
from index.models import Article, SourceFailure
from index.sources import FetchPolicy, is_url
from index.store import Manifest
from qa.api import ArticleQA, EmptyIndexError

UPLOADS = "uploads"
Progress = Callable[[str, int, int | None], None]


class IndexBusyError(RuntimeError):
    """Another write (indexing, prune, rebuild) is running."""


@dataclass
class Library:
    """The index folder the app serves, with its settings."""

    index_dir: Path
    embedding_model: str = DEFAULT_MODEL
    embedding_backend: Backend = "auto"
    cache_dir: Path | None = None
    chroma_url: str | None = None
    collection: str = DEFAULT_COLLECTION
    k: int = 6
    answer_threshold: float | None = None
    fetch: FetchPolicy = field(default_factory=FetchPolicy)
    llm: str | None = None
    llm_base_url: str | None = None
    llm_timeout: float = 60.0
    chunk_size: int | None = None
    chunk_overlap: int | None = None
    store: IndexStore = field(init=False)
    _qa: ArticleQA | None = field(init=False, default=None)
    _retired: list[ArticleQA] = field(init=False, default_factory=list)
    _write_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _qa_lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.index_dir = Path(self.index_dir).expanduser().resolve()
        # Chunking settings default to the ones the index was built with, so that adding a
        # file never re-chunks the whole index as a side effect.
        manifest = Manifest.read(self.index_dir / "manifest.json")
        if self.chunk_size is None:
            self.chunk_size = manifest.chunk_size if manifest else 800
        if self.chunk_overlap is None:
            self.chunk_overlap = manifest.chunk_overlap if manifest else 150
        # Creates the folder when missing; the model loads on first use only.
        self.store = open_index(
            self.index_dir,
            embedding_model=self.embedding_model,
            embedding_backend=self.embedding_backend,
            cache_dir=self.cache_dir,
            chunk_size=self.chunk_size,
            chunk_overlap=self.chunk_overlap,
            chroma_url=self.chroma_url,
            collection=self.collection,
        )
        self._resume_rebuild()
        self.reopen()

    def _resume_rebuild(self) -> None:
        """Finish a rebuild that was interrupted: its articles are in the backup file."""
        if not self.backup_path.exists():
            return
        articles = [
            Article.model_validate_json(line)
            for line in self.backup_path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        if self.store.manifest is None:
            self.store.write_manifest(len(self.store.embeddings.embed_query("dimension probe")))
        Indexer(self.store).index_articles(articles, report=IndexReport(index_dir=str(self.index_dir)))
        self.backup_path.unlink()

    # ---- reading ------------------------------------------------------------------------

    @property
    def uploads_dir(self) -> Path:
        return self.index_dir / UPLOADS

    @property
    def backup_path(self) -> Path:
        return self.index_dir / "rebuild-backup.jsonl"

    @property
    def writing(self) -> bool:
        return self._write_lock.locked()

    def qa(self) -> ArticleQA | None:
        """The question-answering side, or None while the index holds no articles."""
        return self._qa

    def reopen(self) -> None:
        """Open a fresh `ArticleQA` on the index folder (after a write)."""
        try:
            fresh: ArticleQA | None = ArticleQA.open(
                self.index_dir,
                embedding_model=self.embedding_model,
            embedding_backend=self.embedding_backend,
            cache_dir=self.cache_dir,
                chroma_url=self.chroma_url,
                collection=self.collection,
                k=self.k,
                answer_threshold=self.answer_threshold,
                llm=self.llm,
                llm_base_url=self.llm_base_url,
                llm_timeout=self.llm_timeout,
            )
        except EmptyIndexError:
            fresh = None
        with self._qa_lock:
            if self._qa is not None:
                self._retired.append(self._qa)
            self._qa = fresh

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

    def stats(self) -> dict[str, object]:
        return {
            "articles": self.store.articles.count(),
            "chunks": self.store.articles.chunk_total(),
            "sources": len(self.sources()),
            "index folder": str(self.index_dir),
            "embedding model": self.embedding_model,
            # Filled in once the model has run (it loads on first use).
            "embedding backend": getattr(self.store.embeddings, "backend_note", "") or "not loaded yet",
            "vector store": self.chroma_url or "embedded Chroma (index folder)",
        }

    def get_article(self, article_id: str):
        return self.store.articles.get(article_id)

    # ---- writing ------------------------------------------------------------------------

    def _write(self):
        if not self._write_lock.acquire(blocking=False):
            raise IndexBusyError(
                "the index is being updated by another request; try again when it finishes"
            )
        return self._write_lock

    def add(self, files: Sequence[str | Path], urls: Sequence[str], progress: Progress | None = None) -> IndexReport:
        """Index uploaded files and URLs, incrementally: nothing already indexed is removed.

        Files are copied (keeping their names) into `uploads/` in the index folder, so their
        articles get stable ids (the file name without extension) and an origin that stays
        on disk; a copy whose file could not be read is deleted again.
        """
        lock = self._write()
        try:
            inputs: list[str] = []
            copies: list[Path] = []
            rejected: list[tuple[str, str]] = []
            if files:
                self.uploads_dir.mkdir(parents=True, exist_ok=True)
            for f in files:
                src = Path(f)
                name = src.name
                if src.suffix.lower() not in SUPPORTED_EXTENSIONS:
                    rejected.append(
                        (name, f"unsupported file type {src.suffix or '(none)'!r} "
                               f"(supported: {', '.join(SUPPORTED_EXTENSIONS)})")
                    )
                    continue
                dest = self.uploads_dir / name
                shutil.copyfile(src, dest)
                copies.append(dest)
                inputs.append(str(dest))
            for url in urls:
                url = url.strip()
                if not url:
                    continue
                if not is_url(url):
                    rejected.append((url, "not an http:// or https:// URL"))
                    continue
                inputs.append(url)
            report = (
                index_paths(self.store, inputs, fetch=self.fetch, progress=progress)
                if inputs
                else IndexReport(index_dir=str(self.index_dir))
            )
            report.failed.extend(SourceFailure(origin=o, reason=r) for o, r in rejected)
            failed_origins = {f.origin for f in report.failed}
            loaded_origins = set(self.store.articles.origins().values())
            for copy in copies:
                origin = str(copy.resolve())
                if origin in failed_origins and origin not in loaded_origins:
                    copy.unlink(missing_ok=True)
            self.reopen()
            return report
        finally:
            lock.release()

    def prune(self, progress: Progress | None = None) -> IndexReport:
        """Remove the articles whose file no longer exists (e.g. deleted from `uploads/`).

        Articles read from URLs are kept; nothing is re-read, so ids never change.
        """
        lock = self._write()
        try:
            report = IndexReport(index_dir=str(self.index_dir))
            keep = {
                aid
                for aid, origin in self.store.articles.origins().items()
                if is_url(origin) or Path(origin).exists()
            }
            Indexer(self.store, progress).prune(keep, lambda origin: False, report)
            self.reopen()
            return report
        finally:
            lock.release()

    def rebuild(self, progress: Progress | None = None) -> IndexReport:
        """Empty the index and index every stored article again from its stored text.

        Ids, origins and texts are unchanged; chunks and embeddings are made anew (after a
        change of chunking settings, or to repair an index). The articles are first saved to
        `rebuild-backup.jsonl` in the index folder, deleted once the rebuild is done; an
        interrupted rebuild is finished from it the next time the app opens the folder.
        """
        lock = self._write()
        try:
            started = time.perf_counter()
            articles = self.store.articles.list()
            backup = self.backup_path
            backup.write_text(
                "".join(a.model_dump_json() + "\n" for a in articles), encoding="utf-8"
            )
            report = IndexReport(index_dir=str(self.index_dir))
            self.store.reset()
            self.store.write_manifest(len(self.store.embeddings.embed_query("dimension probe")))
            Indexer(self.store, progress).index_articles(articles, report=report)
            backup.unlink(missing_ok=True)
            report.seconds = time.perf_counter() - started
            self.reopen()
            return report
        finally:
            lock.release()

    def close(self) -> None:
        with self._qa_lock:
            for qa in [*self._retired, *([self._qa] if self._qa else [])]:
                try:
                    qa.close()
                except Exception:
                    pass
            self._retired.clear()
            self._qa = None
        self.store.close()

