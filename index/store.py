"""The index folder: Chroma (dense), FTS5 (lexical), the article store and the record manager.

Layout of an index folder:

    manifest.json     embedding model, dimension and chunking the index was built with
    chroma/           Chroma's persistent folder (absent when a Chroma server is used)
    lexical.sqlite    BM25 over the same chunk ids, and each chunk's sentence vectors (index.lexical)
    articles.sqlite   full article texts (index.articles)
    records.sqlite    LangChain's SQLRecordManager: which chunk hashes are indexed

With a database URL, the manifest, the lexical index, the articles and the record manager live
in that database instead (`index.database`; a generation is a schema there), and the folder
holds at most `chroma/`.

`HybridStore` is the LangChain `VectorStore` that LangChain's indexing API writes to: every
add and delete goes to Chroma and to the lexical index with the same ids, so the two never
disagree about which chunks exist once a run (or its re-run) has finished.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import chromadb
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import ChromaError
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from sqlalchemy import Engine, create_engine, event

from articleqa.index.articles import ArticleStore
from articleqa.index.chroma_retry import READ_PAUSES_S, WRITE_PAUSES_S, ChromaServerError, call_server
from articleqa.index.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, split_sentences
from articleqa.index.encoding import SpanVectors
from articleqa.index.folder import IndexFolder, IndexStoreError
from articleqa.index.lexical import LexicalIndex, LexicalRow
from articleqa.index.sqlite_db import BUSY_TIMEOUT_S

if TYPE_CHECKING:
    from langchain_classic.indexes import SQLRecordManager

    from articleqa.index.database import Database

SCHEMA_VERSION = 1
DEFAULT_COLLECTION = "articleqa"
# The manifest's key in the database's articleqa_meta table (index.database).
MANIFEST_KEY = "manifest"


class IndexMismatchError(IndexStoreError):
    """The index was built with settings that differ from the current ones."""


class ChromaUnavailableError(IndexStoreError):
    """The configured Chroma server cannot be reached."""


@dataclass(frozen=True)
class Manifest:
    embedding_model: str
    dimension: int
    chunk_size: int
    chunk_overlap: int
    collection: str
    schema: int = SCHEMA_VERSION

    @classmethod
    def read(cls, path: Path) -> Manifest | None:
        if not path.exists():
            return None
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)  # atomic: a crash never leaves half a manifest


def chroma_client(persist_dir: Path, server_url: str | None = None) -> chromadb.ClientAPI:
    """An embedded persistent client in `persist_dir`, or an HTTP client for `server_url`.

    Telemetry is always off. Raises ChromaUnavailableError naming the URL when a server
    cannot be reached.
    """
    settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if not server_url:
        persist_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(persist_dir), settings=settings)
    parsed = urlparse(server_url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise ChromaUnavailableError(
            f"Chroma server URL {server_url!r} is not valid; expected e.g. http://127.0.0.1:8000"
        )
    try:
        client = chromadb.HttpClient(
            host=parsed.hostname,
            port=parsed.port or (443 if parsed.scheme == "https" else 8000),
            ssl=parsed.scheme == "https",
            settings=settings,
        )
        client.heartbeat()
    except Exception as exc:  # chromadb raises several unrelated types for "not there"
        raise ChromaUnavailableError(
            f"cannot reach the Chroma server at {server_url}: {exc}. "
            "Start one with `chroma run --path DIR` or unset the Chroma URL to use the "
            "embedded store."
        ) from exc
    return client


def chunk_metadata(doc_meta: dict[str, Any]) -> dict[str, Any]:
    """Chroma accepts only str/int/float/bool metadata values: drop the Nones."""
    return {k: v for k, v in doc_meta.items() if v is not None}


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

    @property
    def searches_within_ids(self) -> bool:
        """Whether a filtered `nearest` should be given the allowed chunk ids (`within`): with
        embedded Chroma and the SQLite lexical index, listing them is one local query and Chroma
        reads them in-process. With a Chroma server each search would send the ids over HTTP,
        and with PostgreSQL listing them is one more round trip, so there the clause is used."""
        return self.server_url is None and isinstance(self.lexical, LexicalIndex)

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
        """(chunk id, cosine distance) of the `k` chunks nearest to `vector`, best first.

        `where`: a Chroma where-clause on the chunk metadata. `within`: the ids of the chunks
        that clause allows, when the caller has them (`LexicalIndex.chunk_ids_where`): Chroma
        then searches those ids instead of evaluating the clause, which gives the same chunks
        and distances in about half the time (15 against 35 ms at 3,000 articles;
        docs/BENCHMARKS.md). Chroma fails such a query when one id is not in the collection (a
        chunk another process is indexing or deleting at that moment), and then the clause is
        evaluated after all.
        """
        collection = self.chroma_collection()
        if where and within is not None and len(within) <= NEAREST_WITHIN_MAX:
            if not within:
                return []
            try:
                result = call_server(
                    lambda: collection.query(
                        query_embeddings=[list(vector)], n_results=k, ids=list(within), include=["distances"]
                    ),
                    self.server_url,
                    "searching",
                    READ_PAUSES_S,
                )
                return list(zip(result["ids"][0], result["distances"][0]))
            except ChromaError:
                pass  # "Error finding id": the clause below gives the answer
        result = call_server(
            lambda: collection.query(
                query_embeddings=[list(vector)], n_results=k, where=where or None, include=["distances"]
            ),
            self.server_url,
            "searching",
            READ_PAUSES_S,
        )
        return list(zip(result["ids"][0], result["distances"][0]))

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


# How many candidates Chroma's HNSW search keeps (its `ef_search`). At Chroma's default, 100,
# barely above the 90 neighbours retrieval asks for, the approximate search returned different
# neighbours from one process to the next for the same vector (24 of 60 questions over the
# bundled articles differed somewhere in their top 90; 2026-11-27): the same question could
# get another answer after a restart, and training was not repeatable. At 400 repeated runs
# agree, and the top 90 keep 89 of their neighbours on average.
HNSW_EF_SEARCH = 400
# Chroma writes its HNSW graph to disk once `sync_threshold` operations (its default, 1000) have
# reached it since the last write. The vectors written since stay in its log, and every process
# that opens the collection inserts them into its in-memory graph again, with several threads,
# so each process built a slightly different graph: the same question got different deep
# neighbours in different processes (the bundled articles' index with 817 vectors in the log:
# between any two of four processes, 1 to 4 of the 241 dense rankings of our 170 Wikinews
# training questions differed in their top 120; 2026-11-28). This is what was left of the
# nondeterminism HNSW_EF_SEARCH was raised against. `HybridStore.save_vectors` makes Chroma
# write the graph after every write session, so that every process loads the same graph.
CHROMA_SYNC_THRESHOLD = 1000  # (used when a collection's configuration does not say)
# `HybridStore.nearest` hands Chroma the allowed ids instead of the where-clause up to this many
# ids, about twice the most a filter allowed where it was measured (2,743 of 21,772 chunks, 13 ms
# against 35; docs/BENCHMARKS.md); longer lists, not measured, keep the clause.
NEAREST_WITHIN_MAX = 5000
# The ids of the no-op deletes that make Chroma write its graph (`HybridStore.save_vectors`).
SAVE_MARKER_ID = "articleqa:save-vectors"


def dense_store(client: chromadb.ClientAPI, collection: str, embedding: Embeddings) -> Chroma:
    """The Chroma collection `collection` of `client` (cosine space, `ef_search` at least
    HNSW_EF_SEARCH: an older collection is raised to it) as a langchain-chroma store.

    `embedding` is always passed, so Chroma's default embedder (which downloads a model) is
    never used."""
    store = Chroma(
        collection_name=collection,
        embedding_function=embedding,
        client=client,
        collection_configuration={"hnsw": {"space": "cosine", "ef_search": HNSW_EF_SEARCH}},
    )
    chroma = store._collection  # (langchain-chroma has no public accessor; see chroma_collection)
    hnsw = (chroma.configuration_json or {}).get("hnsw") or {}
    if hnsw.get("ef_search", 0) < HNSW_EF_SEARCH:
        chroma.modify(configuration={"hnsw": {"ef_search": HNSW_EF_SEARCH}})
    return store


class IndexStore:
    """The live index data of one index folder, opened together and checked against its manifest.

    Args:
        index_dir: The index folder (created when missing); see `index.folder` for its layout.
        embeddings: The embedding function; Chroma never embeds on its own.
        embedding_model: Name recorded in the manifest; a different name on open is an error.
        chunk_size, chunk_overlap: Chunking settings recorded in the manifest.
        chroma_url: A Chroma server instead of the embedded `chroma/` folder.
        database_url: A PostgreSQL database (SQLAlchemy URL) holding the manifest, lexical
            index, articles and record manager instead of the folder's files (`index.database`).
        collection: Chroma collection name (one per index when several share a server).
        generation: Open this generation folder (a rebuild being built) instead of the live data.
        check_model: Refuse data built with another embedding model (off for a rebuild, which
            replaces that data).

    Raises:
        IndexMismatchError: The data was built with another embedding model.
        ChromaUnavailableError: `chroma_url` is set and no server answers there.
        index.database.DatabaseUnavailableError: `database_url` is not a PostgreSQL URL, or
            no server answers there.
    """

    def __init__(
        self,
        index_dir: str | Path,
        embeddings: Embeddings,
        *,
        embedding_model: str,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        chunk_overlap: int = DEFAULT_CHUNK_OVERLAP,
        chroma_url: str | None = None,
        database_url: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        generation: Path | None = None,
        check_model: bool = True,
    ):
        self.database_url = database_url
        # The database of the data open here (a generation's schema, or the root's; `_open`).
        self.database: Database | None = None
        self._root_database: Database | None = None  # the token, lock and pointer (the same without generations)
        if database_url:  # imported only then: the default path loads nothing more
            from articleqa.index.database import Database, DatabaseFolder

            self._root_database = Database(database_url, namespace=f"articleqa/{collection}")
            self.folder: IndexFolder = DatabaseFolder(index_dir, self._root_database)
        else:
            self.folder = IndexFolder(index_dir)
        self.root = self.folder.root
        self.generation = generation
        self.check_model = check_model
        self.embeddings = embeddings
        self.embedding_model = embedding_model
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.chroma_url = chroma_url
        self.base_collection = collection
        self.on_stale: Callable[[], None] | None = None
        self._open()

    def _open(self) -> None:
        self.token = self.folder.token()
        self.dir = self.generation or self.folder.live()
        if self.database_url:  # the generation's schema, or the root's (`index.database`)
            self.database = self.folder.data_database(self.dir)
        else:  # (with a database, only embedded Chroma makes its folder)
            self.dir.mkdir(parents=True, exist_ok=True)
        # Generations share a Chroma server, so each gets its own collection; embedded, each
        # has its own chroma/ folder and the name stays as configured.
        collection = self.base_collection
        self.collection = f"{collection}.{self.dir.name}" if self.chroma_url and self.dir != self.root else collection
        self.manifest = self._read_manifest()
        model = self.embedding_model
        if self.check_model and self.manifest and self.manifest.embedding_model != model:
            raise IndexMismatchError(
                f"the index in {self.root} was built with embedding model "
                f"{self.manifest.embedding_model!r}, but {model!r} is configured. "
                f"Set the embedding model back to {self.manifest.embedding_model!r}, or rebuild "
                "the index with `articleqa index PATH --rebuild`."
            )
        self.client = chroma_client(self.dir / "chroma", self.chroma_url)
        self.dense = self._open_dense()
        if self.database is None:
            self.lexical = LexicalIndex(self.dir / "lexical.sqlite")
            self.articles = ArticleStore(self.dir / "articles.sqlite")
        else:
            from articleqa.index.pg_articles import PostgresArticleStore
            from articleqa.index.pg_lexical import PostgresLexicalIndex

            self.lexical = PostgresLexicalIndex(self.database)
            self.articles = PostgresArticleStore(self.database)
        self._records: SQLRecordManager | None = None
        self._records_namespace = f"articleqa/{collection}"
        self.hybrid = HybridStore(self.dense, self.lexical, server_url=self.chroma_url)

    def reopen(self) -> None:
        """Close and open again on the live data, seeing every process's writes.

        Chroma's embedded client is shared by every client of the same folder in a process
        and keeps the vectors in memory: the reopened one is fresh only when no other
        `IndexStore` of this process has the same folder open.
        """
        self.close()
        self._open()

    @contextmanager
    def write_session(self, wait: float | None = None, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the index folder's write lock while writing (see `IndexFolder.writing`).

        When another process wrote since this store was opened, it is reopened first, so
        that nothing is written on top of a stale view of the vectors (by `on_stale` when
        set: a process with several stores on the folder must close them all first).
        """
        with self.folder.writing(wait, on_wait) as before:
            if before != self.token and self.generation is None:
                (self.on_stale or self.reopen)()
            try:
                yield
                self.hybrid.save_vectors()  # (`HybridStore.save_vectors`: every process then loads the same graph)
            finally:
                self.folder.touch()  # the live data: a rebuild may have switched it
                self.token = self.folder.token()

    def _open_dense(self) -> Chroma:
        return dense_store(self.client, self.collection, self.embeddings)

    def open_generation(self, generation: Path) -> IndexStore:
        """The same settings on another generation folder of this index (for a rebuild)."""
        return IndexStore(
            self.root,
            self.embeddings,
            embedding_model=self.embedding_model,
            chunk_size=self.chunk_size,
            chunk_overlap=self.chunk_overlap,
            chroma_url=self.chroma_url,
            database_url=self.database_url,
            collection=self.base_collection,
            generation=generation,
            check_model=False,
        )

    @property
    def manifest_path(self) -> Path:
        return self.dir / "manifest.json"

    @property
    def chunking_changed(self) -> bool:
        m = self.manifest
        return m is not None and (m.chunk_size, m.chunk_overlap) != (self.chunk_size, self.chunk_overlap)

    def _read_manifest(self) -> Manifest | None:
        if self.database is None:
            return Manifest.read(self.manifest_path)
        data = self.database.read_json(MANIFEST_KEY)
        return Manifest.from_dict(data) if data is not None else None

    def write_manifest(self, dimension: int) -> None:
        self.manifest = Manifest(
            embedding_model=self.embedding_model,
            dimension=dimension,
            chunk_size=self.chunk_size,
            chunk_overlap=self.chunk_overlap,
            collection=self.collection,
        )
        if self.database is None:
            self.manifest.write(self.manifest_path)
        else:
            self.database.write_json(MANIFEST_KEY, self.manifest.__dict__)

    @property
    def records(self) -> SQLRecordManager:
        """LangChain's record manager (records.sqlite, or the database's `upsertion_record` table),
        made on first use: only writes need it, so a process that only asks never imports
        langchain_classic's indexing API."""
        if self._records is None:
            from langchain_classic.indexes import SQLRecordManager

            if self.database is None:
                records = SQLRecordManager(
                    namespace=self._records_namespace, engine=records_engine(self.dir / "records.sqlite")
                )
                records.create_schema()
            else:
                records = SQLRecordManager(namespace=self._records_namespace, engine=self.database.engine)
                with self.database.serialized():
                    records.create_schema()
            self._records = records
        return self._records

    def dense_ids(self) -> set[str]:
        return set(self.dense.get(include=[])["ids"])

    def record_keys(self) -> set[str]:
        return set(self.records.list_keys())

    def drop_dense(self) -> None:
        """Delete this data's Chroma collection (a server keeps it after its folder is removed)."""
        try:
            self.client.delete_collection(self.collection)
        except Exception:  # chromadb raises different types for "no such collection"
            pass

    def close(self) -> None:
        """Close every connection: SQLite files (or the database's pool), the record manager's
        engine, the Chroma client.

        Closing twice is harmless; a closed store with a database may be opened again (`reopen`)."""
        self.lexical.close()
        self.articles.close()
        if self._records is not None:
            self._records.engine.dispose()
            self._records = None
        if self.database is not None:
            self.database.dispose()
        if self._root_database is not None:
            self._root_database.dispose()
        try:
            self.client.close()
        except Exception:  # already closed, or a server that went away
            pass


def records_engine(path: Path) -> Engine:
    """The record manager's SQLite database like the other SQLite files: WAL (a kill inside a
    transaction leaves no hot journal for readers to trip on) and a busy timeout."""
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _wal(connection, _record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def published_ord(value: date | None) -> int | None:
    """Dates as integers, because Chroma's range filters ($gte/$lte) compare numbers only."""
    return value.toordinal() if value else None


def read_manifest(index_dir: str | Path, database_url: str | None = None) -> Manifest | None:
    """The manifest of the index in `index_dir` (or in the database at `database_url`), None
    when there is no index yet; opens nothing else (no Chroma, no model)."""
    if not database_url:
        return Manifest.read(IndexFolder(index_dir).live() / "manifest.json")
    from articleqa.index.database import Database, DatabaseFolder

    folder = DatabaseFolder(index_dir, Database(database_url, namespace=""))
    try:
        database = folder.data_database(folder.live())  # the live generation's schema
        try:
            data = database.read_json(MANIFEST_KEY)
        finally:
            database.dispose()
    finally:
        folder.database.dispose()
    return Manifest.from_dict(data) if data is not None else None
