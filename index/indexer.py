"""Incremental indexing: articles in, chunks into Chroma + FTS5, through LangChain's indexing API.

LangChain's `index()` with a SQL record manager gives the incremental semantics: a chunk whose
content hash is already recorded is neither embedded nor written again; with
`cleanup="incremental"` and the article id as source id, the old chunks of a changed article
are deleted once its new chunks are in. We add article-level bookkeeping on top (the article
store, keyed by a hash of the whole article) so unchanged articles are not even chunked, and
prune on request.

Crash safety comes from ordering, not from a transaction across stores:
1. chunks are written to the lexical index and Chroma with deterministic ids (upserts),
2. then the record manager records them,
3. then the article row is written.
A changed article's old row is deleted before step 1 (its old chunks stay until step 2's
incremental cleanup), so no row ever stands for a mix of two versions.
A run killed anywhere leaves at worst chunks that are not yet recorded (re-written with the
same ids by the re-run: no duplicates) or recorded chunks without an article row (the re-run
sees the article as new, embeds nothing and writes the row); a changed article caught in the
killed batch is not answerable until the re-run has written its new version.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from langchain_core.documents import Document
from langchain_core.indexing import index as langchain_index

from articleqa.index.boilerplate import boilerplate_spans, site_of
from articleqa.index.chunking import chunk_article
from articleqa.index.loaders import DEFAULT_EXCLUDES, FetchPolicy, LoadResult, load_articles
from articleqa.index.models import Article, Chunk, IndexReport
from articleqa.index.store import IndexStore, published_ord

ProgressCallback = Callable[[str, int, int | None], None]
"""Called as `progress(phase, done, total)`; phases: "reading", "indexing", "pruning"."""

ARTICLES_PER_BATCH = 32
# Seconds a rebuild keeps the old data after switching, while other processes may still read
# it (a web app on the same folder, replicas through a database's schema or a Chroma server's
# collection): a question that started on the old index just before the switch finishes on it,
# and every later one opens the new index. An index folder needs it too: a file removed while
# open stays readable, but a question that opens a new SQLite connection to the removed file
# gets an empty database ("no such table: articles", seen once in tests/test_serve_while_indexing.py).
SWITCH_GRACE_S = 5.0


def chunk_documents(article: Article, chunks: Sequence[Chunk]) -> list[Document]:
    """LangChain documents for an article's chunks, with the metadata retrieval needs.

    Everything here is part of the content hash LangChain's indexing API uses as chunk id,
    so it must be deterministic (no timestamps).
    """
    base = {
        "article_id": article.id,
        "title": article.title,
        "source": article.source,
        "url": article.url,
        "published_at": article.published_at.isoformat() if article.published_at else None,
        "published_ord": published_ord(article.published_at),
        "author": article.author,
    }
    return [
        Document(
            page_content=chunk.text,
            metadata={**base, "chunk_index": chunk.index, "start": chunk.start, "end": chunk.end},
        )
        for chunk in chunks
    ]


class Indexer:
    """Index articles into one `IndexStore`.

    Args:
        store: The opened index folder.
        progress: Optional progress callback (see `ProgressCallback`).
    """

    def __init__(self, store: IndexStore, progress: ProgressCallback | None = None):
        self.store = store
        self.progress = progress or (lambda phase, done, total: None)

    def index_articles(
        self,
        articles: Sequence[Article],
        *,
        report: IndexReport,
        force: bool = False,
    ) -> IndexReport:
        """Add new and changed articles; leave unchanged ones alone.

        Args:
            articles: Articles with unique ids.
            report: Filled in place (and returned).
            force: Re-chunk every article even when its hash is unchanged (used when the
                chunking settings changed); unchanged chunks are still not re-embedded.
        """
        store = self.store
        known = store.articles.hashes()
        todo: list[Article] = []
        for article in articles:
            old = known.get(article.id)
            if old is None:
                report.added.append(article.id)
                todo.append(article)
            elif old != article.content_hash:
                report.updated.append(article.id)
                todo.append(article)
            else:
                report.unchanged.append(article.id)
                if force:
                    todo.append(article)
        total = len(todo)
        boilerplate = _boilerplate(articles, todo)
        self.progress("indexing", 0, total)
        for start in range(0, total, ARTICLES_PER_BATCH):
            batch = todo[start : start + ARTICLES_PER_BATCH]
            chunked = [
                (a, chunk_article(a, store.chunk_size, store.chunk_overlap, boilerplate.get(a.id, ()))) for a in batch
            ]
            docs = [doc for a, chunks in chunked for doc in chunk_documents(a, chunks)]
            # A changed (or re-chunked) article loses its row first: until the batch is done the
            # stores hold its new chunks beside the old ones, and with the old row that mix would
            # be answerable (new passages cited against the old text). Without a row it is not,
            # and a killed run's re-run finds it missing and indexes it again.
            rewritten = [a.id for a in batch if a.id in known]
            if rewritten:
                store.articles.delete(rewritten)
            if docs:
                # One call per batch of whole articles, batch_size covering all their chunks:
                # incremental cleanup runs per LangChain batch, and an article split across
                # two batches would have its unchanged chunks deleted and re-embedded.
                result = langchain_index(
                    docs,
                    store.records,
                    store.hybrid,
                    cleanup="incremental",
                    source_id_key="article_id",
                    batch_size=len(docs),
                    key_encoder="sha256",
                )
                report.chunks_added += result["num_added"]
                report.chunks_skipped += result["num_skipped"]
                report.chunks_deleted += result["num_deleted"]
            store.articles.upsert((a, len(chunks)) for a, chunks in chunked)
            self.progress("indexing", min(start + len(batch), total), total)
        return report

    def prune(self, keep: set[str], is_protected: Callable[[str], bool], report: IndexReport) -> None:
        """Remove every article not in `keep`, except those whose origin `is_protected`
        (an input that failed this time: bad input never deletes good data).

        Orphan chunks (chunks whose article row never got written because a run was killed
        and its input then disappeared) are removed too.
        """
        store = self.store
        origins = store.articles.origins()
        stale = [aid for aid, origin in origins.items() if aid not in keep and not is_protected(origin)]
        orphans = store.lexical.article_ids() - set(origins) - keep
        targets = stale + sorted(orphans)
        self.progress("pruning", 0, len(targets))
        for done, article_id in enumerate(targets, 1):
            keys = store.records.list_keys(group_ids=[article_id])
            # Chunks written to the stores but never recorded are found via the lexical index.
            keys = sorted(set(keys) | store.lexical.chunk_ids_of(article_id))
            # The row first, then the records, then the chunks: a run killed in between leaves
            # no row over a partly deleted article, and no record of a chunk already gone (the
            # chunks left are found again through the lexical index, as orphans).
            store.articles.delete([article_id])
            if keys:
                store.records.delete_keys(keys)
                store.hybrid.delete(keys)
                report.chunks_deleted += len(keys)
            if article_id in origins:
                report.removed.append(article_id)
            self.progress("pruning", done, len(targets))


def _boilerplate(articles: Sequence[Article], todo: Sequence[Article]) -> dict[str, list[tuple[int, int]]]:
    """The boilerplate lines of the articles to chunk, found over every article of their sites
    that this run read (unchanged ones included), not just the ones to chunk: a run killed
    half-way and run again reads the same inputs, so it chunks exactly as the uninterrupted
    run would have."""
    if not todo:
        return {}
    sites = {site_of(a) for a in todo} - {None}
    return boilerplate_spans([a for a in articles if site_of(a) in sites])


def index_paths(
    store: IndexStore,
    inputs: Sequence[str | Path],
    *,
    prune: bool = False,
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    fetch: FetchPolicy = FetchPolicy(),
    progress: ProgressCallback | None = None,
    wait: float | None = None,
    on_wait: Callable[[], None] | None = None,
) -> IndexReport:
    """Read files, folders and URLs and bring the index up to date with them.

    Runs under the index folder's write lock (`IndexStore.write_session`).

    Args:
        store: The opened index folder.
        inputs: Paths (files or folders, recursive) and http(s) URLs.
        prune: Also remove indexed articles that were not read in this run. Never on a run
            where an input failed: a typo or an unreachable site must not delete anything.
        exclude: File name globs to skip while walking folders.
        fetch: Time and size limits for every input, and which addresses URLs may reach.
        progress: Optional progress callback.
        wait, on_wait: How long to wait for another writer (None: as long as it takes), and
            what to call when waiting starts.

    Returns:
        The run's report; `report.failed` lists inputs that could not be read, with reasons.

    Raises:
        IndexBusyError: Another writer held the lock for longer than `wait`.
    """
    started = time.perf_counter()
    report = IndexReport(index_dir=str(store.root))
    progress = progress or (lambda phase, done, total: None)
    with store.write_session(wait, on_wait):
        loaded = _load(inputs, exclude, fetch, progress)
        report.failed.extend(loaded.failures)
        report.skipped.extend(loaded.skipped)
        rechunk = store.chunking_changed
        if store.manifest is None:
            # Written before any chunk, so a killed first run still records the model it used.
            store.write_manifest(len(store.embeddings.embed_query("dimension probe")))
        indexer = Indexer(store, progress)
        indexer.index_articles(loaded.articles, report=report, force=rechunk)
        if prune and loaded.failures:
            report.notes.append(
                f"nothing was pruned: {len(loaded.failures)} input(s) failed, and articles are "
                "never removed on a run where inputs failed; fix or --exclude them and run again"
            )
        elif prune:
            indexer.prune({a.id for a in loaded.articles}, loaded.origin_failed, report)
        if rechunk:  # only once every article has been re-chunked
            store.write_manifest(store.manifest.dimension)
        # Even when nothing changed: an index written before saving existed gets its graph
        # written out too (about 0.1 s at 10,000 chunks; `HybridStore.save_vectors`).
        store.hybrid.save_vectors(force=True)
    report.seconds = time.perf_counter() - started
    return report


def rebuild_index(
    store: IndexStore,
    inputs: Sequence[str | Path] | None = None,
    *,
    exclude: Sequence[str] = DEFAULT_EXCLUDES,
    fetch: FetchPolicy = FetchPolicy(),
    progress: ProgressCallback | None = None,
    wait: float | None = None,
    on_wait: Callable[[], None] | None = None,
) -> tuple[IndexReport, IndexStore]:
    """Build a new index beside the live one and switch to it only once it is complete.

    The live index keeps answering while the new one is built (`index.folder`); a rebuild that
    fails, is interrupted or is killed leaves it exactly as it was.

    Args:
        store: The live index (opened with `check_model=False` when the embedding model
            changed: its data is replaced, not read, when `inputs` are given).
        inputs: Read these files, folders and URLs into the new index; when any of them fails
            the rebuild is abandoned and the live index is kept (see `report.notes`). None:
            re-chunk and re-embed the texts stored in the live index (ids and texts unchanged).
        exclude, fetch, progress, wait, on_wait: As for `index_paths`.

    Returns:
        `(report, live store)`: the store now live, the new one when the rebuild switched
        (`store` is then closed and its data removed), else `store` itself.

    Raises:
        IndexBusyError: Another writer held the lock for longer than `wait`.
    """
    started = time.perf_counter()
    report = IndexReport(index_dir=str(store.root))
    progress = progress or (lambda phase, done, total: None)
    folder = store.folder
    with store.write_session(wait, on_wait):
        if inputs is None:
            articles = store.articles.list()
        else:
            loaded = _load(inputs, exclude, fetch, progress)
            report.failed.extend(loaded.failures)
            report.skipped.extend(loaded.skipped)
            if loaded.failures:
                report.notes.append(
                    f"rebuild abandoned: {len(loaded.failures)} input(s) failed, so the index was "
                    "left as it was; fix or --exclude them and run again"
                )
                report.seconds = time.perf_counter() - started
                return report, store
            articles = loaded.articles
        generation = folder.new_generation()
        fresh = store.open_generation(generation)
        try:
            fresh.write_manifest(len(fresh.embeddings.embed_query("dimension probe")))
            Indexer(fresh, progress).index_articles(articles, report=report)
            fresh.hybrid.save_vectors()  # (its writes are outside its own write session)
        except BaseException:
            fresh.drop_dense()
            fresh.close()
            folder.remove(generation)
            raise
        old_dir, old_collection = store.dir, store.collection
        store.close()
        folder.switch(generation)
        time.sleep(SWITCH_GRACE_S)  # questions in flight in other processes finish first
        if store.chroma_url and old_collection != fresh.collection:
            try:
                fresh.client.delete_collection(old_collection)
            except Exception:  # already gone; nothing else uses it
                pass
        folder.remove(old_dir)
        fresh.generation = None  # from now on it is the live data
    # The token as the session left it, under the lock: a later write by another process
    # must still look like a change to this store.
    fresh.token = store.token
    report.seconds = time.perf_counter() - started
    return report, fresh


def _load(
    inputs: Sequence[str | Path], exclude: Sequence[str], fetch: FetchPolicy, progress: ProgressCallback
) -> LoadResult:
    read, sources = 0, 0

    def on_discovered(refs: Sequence[object]) -> None:
        nonlocal sources
        sources = len(refs)
        progress("reading", 0, sources)

    def on_source(_ref: object) -> None:
        nonlocal read
        read += 1
        progress("reading", read, sources or None)

    return load_articles(inputs, exclude=exclude, policy=fetch, on_source=on_source, on_discovered=on_discovered)
