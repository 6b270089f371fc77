"""Shared fixtures: a clean environment, the real bundled model (loaded once), real stores, and
real servers (Chroma, PostgreSQL) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.embeddings import Embeddings

from tests.postgres_server import PostgresServer, start_chroma, start_postgres

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "articles"
SEED = EXAMPLES / "macron-white-house-visit.txt"
CORPUS = EXAMPLES / "wikinews-2019-2020.jsonl"
SEED_ID = "macron-white-house-visit"
WASTE_Q = "Who called the meeting a waste of time?"
# A made-up article no corpus mentions: a question about it is answered only once it is indexed.
BRIDGE = (
    "Zorvath bridge reopens after repairs\n\n"
    "The Zorvath bridge reopened on Monday after repairs that cost 9.7 million euros, the city "
    "council said. Engineers had closed it in March after finding cracks in two of its piers."
)
BRIDGE_Q = "How much did the repairs of the Zorvath bridge cost?"
WASTE_SENTENCE = (
    "Another senior European official was even more blunt in his assessment, branding the "
    "Macron-Trump meeting “a waste of time.”"
)

# Offline always, for every test and every subprocess a test starts.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ANONYMIZED_TELEMETRY"] = "False"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# The OpenVINO export of the embedding model goes to a cache folder of this test session (made
# once, shared by the tests and the CLI and server processes they start), never ~/.cache.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="articleqa-test-cache-")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ARTICLEQA_* setting leaks in from the developer's shell, and no stray .env is read."""
    for name in list(os.environ):
        if name.startswith("ARTICLEQA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def embeddings():
    """The real bundled all-MiniLM-L6-v2, loaded once per test session."""
    from articleqa.index.embeddings import get_embeddings

    model = get_embeddings()
    model.encode(["warm up"])
    return model


class CountingEmbeddings(Embeddings):
    """The real model, counting how many texts it was asked to embed (to prove skips)."""

    def __init__(self, inner):
        self.inner = inner
        self.documents_embedded = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.documents_embedded += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)

    # The span path the index uses with the real model (chunk and sentence vectors in one pass).
    @property
    def supports_spans(self) -> bool:
        return self.inner.supports_spans

    def encode_with_spans(self, texts, spans):
        self.documents_embedded += len(texts)
        return self.inner.encode_with_spans(texts, spans)


@pytest.fixture
def counting(embeddings) -> CountingEmbeddings:
    return CountingEmbeddings(embeddings)


@pytest.fixture
def open_store(counting, tmp_path: Path):
    """Factory: open an IndexStore in a temp folder with the counting real model."""
    from articleqa.index.store import IndexStore

    opened = []

    def _open(index_dir: Path | None = None, **kwargs) -> IndexStore:
        kwargs.setdefault("embedding_model", "bundled:all-MiniLM-L6-v2")
        store = IndexStore(index_dir or tmp_path / "index", counting, **kwargs)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.close()


def corpus_rows(n: int | None = None) -> list[dict]:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]
    return rows[:n] if n else rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def example_index(tmp_path_factory, embeddings) -> Iterator[Path]:
    """The bundled example articles (seed + 291 Wikinews) indexed once per session, read-only."""
    from articleqa.index import index_paths
    from articleqa.index.store import IndexStore

    index_dir = tmp_path_factory.mktemp("example-index")
    store = IndexStore(index_dir, embeddings, embedding_model="bundled:all-MiniLM-L6-v2")
    report = index_paths(store, [EXAMPLES])
    store.close()
    assert not report.failed, report.failed
    assert len(report.added) == 292
    yield index_dir


def serve_chroma(folder: Path) -> Iterator[str]:
    """For a fixture: a real `chroma run` server (the binary that ships with chromadb) on
    127.0.0.1 with its data in `folder`, its URL yielded; failing to start it fails the test
    (never a skip)."""
    try:
        proc, url = start_chroma(folder)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def chroma_server(tmp_path):
    """A real `chroma run` server on 127.0.0.1, for one test."""
    yield from serve_chroma(tmp_path / "server-data")


@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> Iterator[PostgresServer]:
    """A real PostgreSQL server (Debian's `postgresql` package) on 127.0.0.1, for the session.

    Fails, never skips, when the binaries are missing: CI installs them (.ci/run)."""
    try:
        server = start_postgres(tmp_path_factory.mktemp("postgres"))
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture
def database_url(postgres) -> str:
    """A new, empty database on the session's PostgreSQL server (its SQLAlchemy URL)."""
    return postgres.create_database(f"test_{uuid.uuid4().hex[:12]}")
