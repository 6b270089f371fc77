"""`HybridStore`: Chroma and the lexical index behind one LangChain `VectorStore`.

The index's writes go through it (LangChain's indexing API calls `add_documents` and `delete`),
and it is a complete LangChain vector store of its own (`HybridStore.open`, `from_texts`).
`index.store.IndexStore` makes it on first use, so that a process that only asks imports none of
LangChain's vector-store classes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import chromadb
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from articleqa.index.chroma_retry import READ_PAUSES_S, WRITE_PAUSES_S, ChromaServerError, call_server
from articleqa.index.chunking import split_sentences
from articleqa.index.encoding import SpanVectors
from articleqa.index.lexical import LexicalIndex, LexicalRow
from articleqa.index.store import (
    CHROMA_SYNC_THRESHOLD,
    DEFAULT_COLLECTION,
    SAVE_MARKER_ID,
    chroma_client,
    chunk_metadata,
    nearest,
    open_collection,
)


def dense_store(client: chromadb.ClientAPI, collection: str, embedding: Embeddings) -> Chroma:
    """The Chroma collection `collection` of `client` (`index.store.open_collection`: cosine
    space, `ef_search` at least HNSW_EF_SEARCH) as a langchain-chroma store.

    `embedding` is always passed, so Chroma's default embedder (which downloads a model) is
    never used."""
    open_collection(client, collection)  # (created, or its ef_search raised, the one way)
    return Chroma(collection_name=collection, embedding_function=embedding, client=client)


class HybridStore(VectorStore):
    """Chroma and the lexical index behind one LangChain VectorStore, same ids in both.

    Chroma holds each chunk's vector and metadata; the chunk's text lives once, in the lexical
    index (which needs it for BM25). Not giving Chroma the text saves its own full-text
    indexing of it: 1.3 of the 2.0 s Chroma took to write the 1,844 example chunks.

    The product opens it through `IndexStore` (which adds the articles and the record manager)
    and writes article chunks, whose metadata carries `article_id`, `start` and `end`. It is
    also a complete LangChain vector store on its own (`open`, `from_texts`, any `Embeddings`),
    checked by LangChain's standard suite (tests/test_langchain_contracts.py: every test, sync
    and async, passes; none is skipped): a document that is not an article's chunk is stored
    in the lexical index with an empty article id and its whole text as its span. Embeddings
    with `supports_spans` (the bundled model) also give each chunk's sentence vectors, stored
    for the answerer; any other `Embeddings` gives chunk vectors only. One deliberate departure
    from the base class, which the suite does not test: `delete(None)` raises instead of
    deleting everything (an index is emptied by a rebuild, never by a missing argument).
    Async methods are the base class's (the sync ones in a thread; SQLite connections are per
    thread).
    """

    def __init__(self, dense: Chroma, lexical: LexicalIndex, *, server_url: str | None = None):
        self.dense = dense
        self.lexical = lexical
        # A Chroma server (its requests are retried through short outages; `index.chroma_retry`).
        self.server_url = server_url
        self._owned: list[Callable[[], None]] = []  # what `close` closes (see `open`)
        self.unsaved = False  # vectors written or deleted since Chroma last wrote its graph

    @classmethod
    def open(cls, folder: str | Path, embedding: Embeddings, *, collection: str = DEFAULT_COLLECTION) -> HybridStore:
        """A store of its own in `folder` (`chroma/` and `lexical.sqlite`, created when missing),
        without the article store and record manager of an index folder; `close` it after use."""
        folder = Path(folder)
        client = chroma_client(folder / "chroma")
        store = cls(dense_store(client, collection, embedding), LexicalIndex(folder / "lexical.sqlite"))
        store._owned = [store.lexical.close, client.close]
        return store

    def close(self) -> None:
        """Close what `open` opened, writing Chroma's graph out first when vectors changed
        (`save_vectors`; a store made by `IndexStore` is closed, and saved, by it)."""
        if self._owned and self.unsaved:
            self.save_vectors()
        for close in self._owned:
            try:
                close()
            except Exception:  # already closed
                pass

    @property
    def embeddings(self) -> Embeddings | None:
        return self.dense.embeddings

    def chroma_collection(self) -> chromadb.Collection:
        """The Chroma collection under `self.dense`: the one place that reaches into it.

        langchain-chroma's public methods do not suffice: `add_texts`/`add_documents` embed the
        texts themselves and store them as Chroma documents (we write vectors computed once with
        the sentence vectors, and keep the text in the lexical index only), and its searches and
        `get_by_ids` build Documents from that stored text. Chroma's own `Collection` API does
        what we need (upsert vectors and metadata, query ids and distances, count), and
        langchain-chroma exposes the collection only as the private `_collection`.
        """
        return self.dense._collection

    def count(self) -> int:
        """How many vectors Chroma holds."""
        return self.chroma_collection().count()

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Upsert `documents` into Chroma and the lexical index under the same ids.

        Ids are `ids=` (one per document; the indexer passes content hashes), else each
        document's own `id`, else a new UUID. Documents are never modified.
        """
        ids = kwargs.get("ids")
        if ids is None:
            ids = [d.id or str(uuid.uuid4()) for d in documents]
        elif len(ids) != len(documents):
            raise ValueError(f"HybridStore needs one id per document: {len(ids)} ids for {len(documents)} documents")
        ids = [str(i) for i in ids]
        if not documents:
            return []
        docs = [Document(page_content=d.page_content, metadata=chunk_metadata(d.metadata)) for d in documents]
        texts = [d.page_content for d in docs]
        embeddings = self.embeddings
        if embeddings is None:
            raise ValueError("HybridStore needs an embedding function; Chroma never embeds on its own")
        sentences: list[SpanVectors | None] = [None] * len(docs)
        if getattr(embeddings, "supports_spans", False):
            # One pass gives the chunk vectors for Chroma and the sentence vectors the answerer
            # uses (the same sentence split as qa.answerer's), instead of encoding sentences
            # at question time.
            spans = [[(s.start, s.end) for s in split_sentences(t)] for t in texts]
            vectors, found = embeddings.encode_with_spans(texts, spans)
            sentences = list(found)
        else:
            vectors = embeddings.embed_documents(texts)
        # Lexical first: it is cheap and local. If we die before Chroma is written, the record
        # manager has not recorded these ids, so the re-run writes both again (upserts).
        existed = set(self.lexical.get(ids)) if self.server_url else set()
        self.lexical.upsert(
            LexicalRow(
                chunk_id=i,
                # A document that is not an article's chunk: no article, its whole text as span.
                article_id=d.metadata.get("article_id", ""),
                source=d.metadata.get("source"),
                published_ord=d.metadata.get("published_ord"),
                start=d.metadata.get("start", 0),
                end=d.metadata.get("end", len(d.page_content)),
                text=d.page_content,
                sentences=s,
            )
            for i, d, s in zip(ids, docs, sentences, strict=True)
        )
        # Vectors computed above, no text (see the class docstring). Chroma refuses empty
        # metadata dicts: None stands for "no metadata".
        metadatas = [d.metadata or None for d in docs]
        try:
            call_server(
                lambda: self.chroma_collection().upsert(ids=ids, embeddings=vectors, metadatas=metadatas),
                self.server_url,
                f"writing {len(ids)} chunks",
                WRITE_PAUSES_S,
            )
        except ChromaServerError as exc:
            self._roll_back([i for i in ids if i not in existed], exc)
            raise
        finally:
            self.unsaved = True  # (even a failed upsert may have written part of the batch)
        return ids

    def _roll_back(self, written: list[str], error: ChromaServerError) -> None:
        """Delete the lexical rows this batch added when Chroma could not take the batch, so
        that neither store holds chunks the other lacks (rows that were there before stay: a
        killed run may have put their vectors in Chroma already)."""
        try:
            self.lexical.delete(written)
        except Exception as exc:  # the database went too: `articleqa check` reports what is left
            error.add_note(f"{len(written)} chunks written to the lexical index could not be removed again: {exc}")

    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, **kwargs: Any) -> list[str]:
        texts = list(texts)
        metadatas = metadatas or [{} for _ in texts]
        docs = [Document(page_content=t, metadata=m) for t, m in zip(texts, metadatas, strict=True)]
        return self.add_documents(docs, **kwargs)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete these ids from Chroma and the lexical index (unknown ids are ignored).

        `ids=None` raises rather than deleting everything, as LangChain's base class allows:
        an index is emptied by a rebuild, never by a missing argument.
        """
        if ids is None:
            raise ValueError("HybridStore.delete needs the ids to delete (it never deletes everything)")
        if not ids:
            return True
        self.unsaved = True
        call_server(
            lambda: self.dense.delete(ids=list(ids)), self.server_url, f"deleting {len(ids)} chunks", WRITE_PAUSES_S
        )
        self.lexical.delete(ids)
        return True

    def save_vectors(self, force: bool = False) -> None:
        """Have Chroma write its whole HNSW graph to disk now, if vectors changed since it last
        did (in this process; `force`: whatever happened before, e.g. an index written before
        this existed).

        Chroma has no call for this: it writes the graph once `sync_threshold` operations have
        reached it since the last write (CHROMA_SYNC_THRESHOLD). So that many deletes of ids no
        chunk has are sent in one request: they change nothing, and they make Chroma write the
        graph with every vector written before them (0.1 s at 1,844 vectors; the log entries
        are purged afterwards). Without it, the vectors written since Chroma last wrote the graph
        are inserted into it again by every process that opens the collection, a little
        differently each time, and the same question could retrieve different deep neighbours in
        different processes.
        """
        if not (self.unsaved or force):
            return
        collection = self.chroma_collection()
        hnsw = (collection.configuration_json or {}).get("hnsw") or {}
        markers = [f"{SAVE_MARKER_ID}:{i}" for i in range(int(hnsw.get("sync_threshold") or CHROMA_SYNC_THRESHOLD))]
        call_server(lambda: collection.delete(ids=markers), self.server_url, "saving the vector index", WRITE_PAUSES_S)
        self.unsaved = False

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids, in that order (missing ids are left out)."""
        ids = list(dict.fromkeys(ids))
        return self._documents(ids)

    def _documents(self, ids: list[str]) -> list[Document]:
        """Documents for chunk ids: text from the lexical index, metadata from Chroma."""
        if not ids:
            return []
        rows = self.lexical.get(ids)
        got = call_server(
            lambda: self.dense.get(ids=ids, include=["metadatas"]), self.server_url, "reading chunks", READ_PAUSES_S
        )
        metas = dict(zip(got["ids"], got["metadatas"]))
        return [
            Document(id=i, page_content=rows[i].text, metadata=metas.get(i) or {})
            for i in ids
            if i in rows and i in metas
        ]

    def nearest(
        self, vector: Sequence[float], k: int, where: dict | None = None, *, within: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """(chunk id, cosine distance) of the `k` chunks nearest to `vector`, best first
        (`index.store.nearest`: `where` a Chroma where-clause, `within` the ids it allows)."""
        return nearest(self.chroma_collection(), vector, k, where, within=within, server_url=self.server_url)

    def similarity_search_by_vector_with_score(
        self, embedding: Sequence[float], k: int = 4, filter: dict | None = None
    ) -> list[tuple[Document, float]]:
        """The nearest chunks as Documents with their cosine distance (lower is nearer).

        `filter` is a Chroma where-clause on the chunk metadata, as in langchain-chroma.
        """
        hits = self.nearest(embedding, k, filter)
        docs = {d.id: d for d in self._documents([chunk_id for chunk_id, _ in hits])}
        return [(docs[i], distance) for i, distance in hits if i in docs]

    def similarity_search_with_score(self, query: str, k: int = 4, **kwargs: Any) -> list[tuple[Document, float]]:
        return self.similarity_search_by_vector_with_score(self.embeddings.embed_query(query), k, kwargs.get("filter"))

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, **kwargs: Any) -> list[Document]:
        return [d for d, _ in self.similarity_search_by_vector_with_score(embedding, k, kwargs.get("filter"))]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """LangChain's interface: the nearest chunks as Documents (text from the lexical index).

        `filter` is a Chroma where-clause on the chunk metadata, as in langchain-chroma.
        """
        return [d for d, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # The collection's space is cosine (dense_store): distance 0..2, float error around 0.
        return lambda distance: min(1.0, max(0.0, 1.0 - distance))

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        folder: str | Path | None = None,
        collection: str = DEFAULT_COLLECTION,
        **kwargs: Any,
    ) -> HybridStore:
        """A store in `folder` (required: the data is kept there) holding `texts`.

        The product opens index folders with `index.store.IndexStore` instead, which also
        keeps the articles and the record manager.
        """
        if folder is None:
            raise ValueError("HybridStore.from_texts needs folder=: the folder its data is kept in")
        store = cls.open(folder, embedding, collection=collection)
        store.add_texts(texts, metadatas, ids=ids)
        return store
