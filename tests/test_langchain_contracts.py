"""LangChain's standard test suites (langchain-tests) run against our LangChain components.

`HybridStore` is checked as a vector store with the suite's own deterministic fake embeddings
(so any `Embeddings` is proven to work, not only the bundled model's span path), in an empty
folder per test. `HybridRetriever` is checked as a retriever over a small real index (the seed
article and five Wikinews articles, embedded with the bundled model once per module).

The async tests of the suites are plain `async def` methods; pytest-asyncio runs them
(`asyncio_mode = "auto"` in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import (
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)

from articleqa.index import index_paths
from articleqa.index.store import IndexStore
from articleqa.index.vectorstore import HybridStore
from articleqa.qa.retriever import HybridRetriever
from tests.conftest import SEED, WASTE_Q, corpus_rows, write_jsonl


class TestHybridStoreContract(VectorStoreIntegrationTests):
    """Every test of the suite, sync and async, runs unmodified (none skipped or xfailed)."""

    @pytest.fixture
    def vectorstore(self, tmp_path: Path) -> Iterator[HybridStore]:
        store = HybridStore.open(tmp_path / "store", self.get_embeddings())
        try:
            yield store
        finally:
            store.close()


@pytest.fixture(scope="module")
def small_index(tmp_path_factory, embeddings) -> Iterator[IndexStore]:
    """The seed article and five Wikinews articles, indexed with the bundled model."""
    folder = tmp_path_factory.mktemp("contract-index")
    feed = write_jsonl(folder / "feed.jsonl", corpus_rows(5))
    store = IndexStore(folder / "index", embeddings, embedding_model="bundled:all-MiniLM-L6-v2")
    report = index_paths(store, [feed, SEED])
    assert len(report.added) == 6 and not report.failed
    yield store
    store.close()


@pytest.mark.slow  # a small real index, embedded with the bundled model
class TestHybridRetrieverContract(RetrieversIntegrationTests):
    """Every test of the suite runs unmodified (none skipped or xfailed)."""

    @pytest.fixture(autouse=True)
    def _store(self, small_index: IndexStore) -> None:
        # The suite builds retrievers from `retriever_constructor_params` outside fixtures.
        self.store = small_index

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return HybridRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"store": self.store}

    @property
    def retriever_query_example(self) -> str:
        return WASTE_Q
