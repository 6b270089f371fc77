"""Indexing: read articles, chunk them, embed them into Chroma and a BM25 index, incrementally.

Typical use::

    from articleqa.index import open_index, index_paths

    store = open_index(".articleqa")
    report = index_paths(store, ["examples/articles"], prune=True)
    print(report.summary())

The names below are imported from their modules on first use (PEP 562 `__getattr__`), so that
importing this package, or a light module of it such as `index.offline` or `index.defaults`,
loads no Chroma, LangChain or model library (`articleqa --help` imports them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from articleqa.index.lazy import lazy_exports

if TYPE_CHECKING:  # what type checkers see; at run time `__getattr__` imports each on first use
    from articleqa.index.chunking import chunk_article, split_sentences
    from articleqa.index.defaults import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, DEFAULT_INDEX_DIR
    from articleqa.index.embeddings import (
        DEFAULT_BACKEND,
        DEFAULT_MODEL,
        ModelNotFoundError,
        SentenceTransformerEmbeddings,
        get_embeddings,
    )
    from articleqa.index.folder import IndexBusyError, IndexFolder
    from articleqa.index.indexer import Indexer, ProgressCallback, index_paths, rebuild_index
    from articleqa.index.loaders import DEFAULT_EXCLUDES, SUPPORTED_EXTENSIONS, load_articles
    from articleqa.index.models import Article, Chunk, IndexReport, SourceFailure
    from articleqa.index.offline import OFFLINE_ENVIRONMENT, apply_offline_environment
    from articleqa.index.opening import open_index
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

# The module (of this package) that defines each name of `__all__`.
_SOURCES: dict[str, str] = {
    "DEFAULT_BACKEND": "embeddings",
    "DEFAULT_CHUNK_OVERLAP": "defaults",
    "DEFAULT_CHUNK_SIZE": "defaults",
    "DEFAULT_COLLECTION": "store",
    "DEFAULT_EXCLUDES": "loaders",
    "DEFAULT_INDEX_DIR": "defaults",
    "DEFAULT_MODEL": "embeddings",
    "OFFLINE_ENVIRONMENT": "offline",
    "SUPPORTED_EXTENSIONS": "loaders",
    "Article": "models",
    "ChromaUnavailableError": "store",
    "Chunk": "models",
    "IndexBusyError": "folder",
    "IndexFolder": "folder",
    "IndexMismatchError": "store",
    "IndexReport": "models",
    "IndexStore": "store",
    "IndexStoreError": "store",
    "Indexer": "indexer",
    "ModelNotFoundError": "embeddings",
    "ProgressCallback": "indexer",
    "SentenceTransformerEmbeddings": "embeddings",
    "SourceFailure": "models",
    "apply_offline_environment": "offline",
    "chunk_article": "chunking",
    "get_embeddings": "embeddings",
    "index_paths": "indexer",
    "load_articles": "loaders",
    "open_index": "opening",
    "rebuild_index": "indexer",
    "split_sentences": "chunking",
}


__getattr__, __dir__ = lazy_exports(__name__, _SOURCES, __all__)
