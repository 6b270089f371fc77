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

Writes go through `index.vectorstore.HybridStore`, the LangChain `VectorStore` that LangChain's
indexing API writes to: every add and delete goes to Chroma and to the lexical index with the
same ids, so the two never disagree about which chunks exist once a run (or its re-run) has
finished. `IndexStore` makes it (and langchain-chroma's `Chroma` under it) on first use: a
process that only asks searches Chroma's collection directly (`nearest`) and never imports
LangChain's vector-store and retriever classes, about a second of a cold `articleqa ask` on a
2-core AVX2 CPU (docs/BENCHMARKS.md, "Cold start").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import chromadb
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import ChromaError

from articleqa.index.articles import ArticleStore
from articleqa.index.chroma_retry import READ_PAUSES_S, call_server
from articleqa.index.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
from articleqa.index.folder import IndexFolder, IndexStoreError
from articleqa.index.lexical import LexicalIndex
from articleqa.index.sqlite_db import BUSY_TIMEOUT_S

if TYPE_CHECKING:  # (imported where used: asking needs none of them)
    from langchain_chroma import Chroma
    from langchain_classic.indexes import SQLRecordManager
    from langchain_core.embeddings import Embeddings
    from sqlalchemy import Engine

    from articleqa.index.database import Database
    from articleqa.index.vectorstore import HybridStore

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
# `nearest` hands Chroma the allowed ids instead of the where-clause up to this many
# ids, about twice the most a filter allowed where it was measured (2,743 of 21,772 chunks, 13 ms
# against 35; docs/BENCHMARKS.md); longer lists, not measured, keep the clause.
NEAREST_WITHIN_MAX = 5000
# The ids of the no-op deletes that make Chroma write its graph (`HybridStore.save_vectors`).
SAVE_MARKER_ID = "articleqa:save-vectors"


def open_collection(client: chromadb.ClientAPI, name: str) -> chromadb.Collection:
    """The Chroma collection `name` of `client`, created when missing (cosine space, `ef_search`
    HNSW_EF_SEARCH; an older collection is raised to it), as langchain-chroma's `Chroma` opens it.

    No embedding function is given, so Chroma's default embedder (which downloads a model) is
    never used: every vector is computed by our embedder and passed in."""
    collection = client.get_or_create_collection(
        name=name,
        embedding_function=None,
        configuration={"hnsw": {"space": "cosine", "ef_search": HNSW_EF_SEARCH}},
    )
    hnsw = (collection.configuration_json or {}).get("hnsw") or {}
    if hnsw.get("ef_search", 0) < HNSW_EF_SEARCH:
        collection.modify(configuration={"hnsw": {"ef_search": HNSW_EF_SEARCH}})
    return collection


def nearest(
    collection: chromadb.Collection,
    vector: Sequence[float],
    k: int,
    where: dict | None = None,
    *,
    within: Sequence[str] | None = None,
    server_url: str | None = None,
) -> list[tuple[str, float]]:
    """(chunk id, cosine distance) of the `k` chunks of `collection` nearest to `vector`, best first.

    `where`: a Chroma where-clause on the chunk metadata. `within`: the ids of the chunks
    that clause allows, when the caller has them (`LexicalIndex.chunk_ids_where`): Chroma
    then searches those ids instead of evaluating the clause, which gives the same chunks
    and distances in about half the time (15 against 35 ms at 3,000 articles;
    docs/BENCHMARKS.md). Chroma fails such a query when one id is not in the collection (a
    chunk another process is indexing or deleting at that moment), and then the clause is
    evaluated after all. `server_url`: a Chroma server's, whose requests are retried through
    short outages (`index.chroma_retry`).
    """
    if where and within is not None and len(within) <= NEAREST_WITHIN_MAX:
        if not within:
            return []
        try:
            result = call_server(
                lambda: collection.query(
                    query_embeddings=[list(vector)], n_results=k, ids=list(within), include=["distances"]
                ),
                server_url,
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
        server_url,
        "searching",
        READ_PAUSES_S,
    )
    return list(zip(result["ids"][0], result["distances"][0]))


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
        self.vectors = open_collection(self.client, self.collection)
        for made_on_first_use in ("dense", "hybrid"):  # (of the data opened before, if any)
            self.__dict__.pop(made_on_first_use, None)
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

    @cached_property
    def dense(self) -> Chroma:
        """The Chroma collection as a langchain-chroma store (`self.vectors` is the same
        collection for Chroma's own API), made on first use."""
        from articleqa.index.vectorstore import dense_store

        return dense_store(self.client, self.collection, self.embeddings)

    @cached_property
    def hybrid(self) -> HybridStore:
        """The LangChain `VectorStore` over Chroma and the lexical index that writes go through
        (`index.vectorstore.HybridStore`), made on first use: asking never needs it."""
        from articleqa.index.vectorstore import HybridStore

        return HybridStore(self.dense, self.lexical, server_url=self.chroma_url)

    @property
    def searches_within_ids(self) -> bool:
        """Whether a filtered `nearest` should be given the allowed chunk ids (`within`): with
        embedded Chroma and the SQLite lexical index, listing them is one local query and Chroma
        reads them in-process. With a Chroma server each search would send the ids over HTTP,
        and with PostgreSQL listing them is one more round trip, so there the clause is used."""
        return self.chroma_url is None and isinstance(self.lexical, LexicalIndex)

    def nearest(
        self, vector: Sequence[float], k: int, where: dict | None = None, *, within: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """(chunk id, cosine distance) of the `k` chunks nearest to `vector`, best first (see
        the module's `nearest`)."""
        return nearest(self.vectors, vector, k, where, within=within, server_url=self.chroma_url)

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
                if "hybrid" in self.__dict__:  # (a store never written through saves nothing)
                    self.hybrid.save_vectors()  # (`HybridStore.save_vectors`: every process then loads the same graph)
            finally:
                self.folder.touch()  # the live data: a rebuild may have switched it
                self.token = self.folder.token()

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
        return set(self.vectors.get(include=[])["ids"])

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
    from sqlalchemy import create_engine, event

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
