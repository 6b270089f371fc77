"""`open_index`: an index folder with the shared embedding model, in one call (re-exported by
`articleqa.index`, which imports this module on first use)."""

from __future__ import annotations

from pathlib import Path

from articleqa.index.defaults import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
from articleqa.index.embeddings import DEFAULT_BACKEND, DEFAULT_MODEL, Backend, get_embeddings
from articleqa.index.precision import DEFAULT_PRECISION, Precision
from articleqa.index.store import DEFAULT_COLLECTION, IndexStore


def open_index(
    index_dir: str | Path,
    *,
    embedding_model: str = DEFAULT_MODEL,
    embedding_backend: Backend = DEFAULT_BACKEND,
    embedding_precision: Precision = DEFAULT_PRECISION,
    cache_dir: Path | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
    chroma_url: str | None = None,
    database_url: str | None = None,
    collection: str = DEFAULT_COLLECTION,
    check_model: bool = True,
) -> IndexStore:
    """Open (or create) an index folder with the shared embedding model for `embedding_model`.

    The model itself loads on first use, so opening an index to read its statistics is cheap.
    `embedding_backend`, `embedding_precision` and `cache_dir`: see `index.embeddings.SentenceTransformerEmbeddings`.
    `check_model=False` opens an index built with another model (to rebuild it).
    `chroma_url`, `database_url`: a Chroma server, a PostgreSQL database (see `IndexStore`).
    """
    return IndexStore(
        index_dir,
        get_embeddings(embedding_model, backend=embedding_backend, cache_dir=cache_dir, precision=embedding_precision),
        embedding_model=embedding_model,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        chroma_url=chroma_url,
        database_url=database_url,
        collection=collection,
        check_model=check_model,
    )
