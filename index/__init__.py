"""Indexing: read articles, chunk them, embed them into Chroma and a BM25 index, incrementally.

Typical use::

    from articleqa.index import open_index, index_paths

    store = open_index(".articleqa")
    report = index_paths(store, ["examples/articles"], prune=True)
    print(report.summary())
"""

from __future__ import annotations

from pathlib import Path

from articleqa.index.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, chunk_article, split_sentences
from articleqa.index.embeddings import (
    DEFAULT_BACKEND,
    DEFAULT_MODEL,
    Backend,
    ModelNotFoundError,
    SentenceTransformerEmbeddings,
    get_embeddings,
)
from articleqa.index.folder import DEFAULT_INDEX_DIR, IndexBusyError, IndexFolder
from articleqa.index.indexer import Indexer, ProgressCallback, index_paths, rebuild_index
from articleqa.index.loaders import DEFAULT_EXCLUDES, SUPPORTED_EXTENSIONS, load_articles
from articleqa.index.models import Article, Chunk, IndexReport, SourceFailure
from articleqa.index.offline import OFFLINE_ENVIRONMENT, apply_offline_environment
from articleqa.index.store import (
    DEFAULT_COLLECTION,
    ChromaUnavailableError,
    IndexMismatchError,
    IndexStore,
    IndexStoreError,
)

__all__ = [
    "DEFAULT_BACKEND",
    "DEFAULT_CHUNK_OVERLAP",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_COLLECTION",
    "DEFAULT_EXCLUDES",
    "DEFAULT_INDEX_DIR",
    "DEFAULT_MODEL",
    "OFFLINE_ENVIRONMENT",
    "SUPPORTED_EXTENSIONS",
    "Article",
    "ChromaUnavailableError",
    "Chunk",
    "IndexBusyError",
    "IndexFolder",
    "IndexMismatchError",
    "IndexReport",
    "IndexStore",
    "IndexStoreError",
    "Indexer",
    "ModelNotFoundError",
    "ProgressCallback",
    "SentenceTransformerEmbeddings",
    "SourceFailure",
    "apply_offline_environment",
    "chunk_article",
    "get_embeddings",
    "index_paths",
    "load_articles",
    "open_index",
    "rebuild_index",
    "split_sentences",
]


def open_index(
    index_dir: str | Path,
    *,
    embedding_model: str = DEFAULT_MODEL,
    embedding_backend: Backend = DEFAULT_BACKEND,
    cache_dir: Path | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
    chroma_url: str | None = None,
    collection: str = DEFAULT_COLLECTION,
    check_model: bool = True,
) -> IndexStore:
    """Open (or create) an index folder with the shared embedding model for `embedding_model`.

    The model itself loads on first use, so opening an index to read its statistics is cheap.
    `embedding_backend` and `cache_dir`: see `index.embeddings.SentenceTransformerEmbeddings`.
    `check_model=False` opens an index built with another model (to rebuild it).
    """
    return IndexStore(
        index_dir,
        get_embeddings(embedding_model, backend=embedding_backend, cache_dir=cache_dir),
        embedding_model=embedding_model,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        chroma_url=chroma_url,
        collection=collection,
        check_model=check_model,
    )
