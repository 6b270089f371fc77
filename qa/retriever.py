"""`HybridRetriever`: the hybrid search of `qa.retrieval` as a LangChain retriever.

    retriever = HybridRetriever(store=store, k=4)   # any `HybridSearch` field
    docs = retriever.invoke("Who called the meeting a waste of time?")

`invoke` returns Documents whose metadata carries the fields of `qa.models.Passage`; it runs
`HybridSearch.retrieve`, the search `ArticleQA` asks with. Kept apart from `qa.retrieval` so that
asking imports none of LangChain's retriever and callback machinery.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from articleqa.qa.retrieval import HybridSearch, RetrievalResult

_SEARCH_FIELDS = frozenset(f.name for f in dataclasses.fields(HybridSearch))


class HybridRetriever(BaseRetriever):
    """A LangChain retriever over an `IndexStore`: dense + BM25, fused with RRF.

    Built from a `HybridSearch` (`HybridRetriever(search=...)`) or from its fields
    (`HybridRetriever(store=store, k=4)`); LangChain's own fields (`tags`, `metadata`) pass
    through. Use `retrieve()` for typed `Passage`s; `invoke()` (LangChain) returns Documents
    whose metadata carries the same fields, and `invoke(query, k=3)` overrides `k`.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    search: HybridSearch

    def __init__(self, search: HybridSearch | None = None, **kwargs: Any):
        own = {name: kwargs.pop(name) for name in list(kwargs) if name in _SEARCH_FIELDS}
        if search is not None and own:
            raise TypeError(f"give either search= or its fields ({', '.join(sorted(own))}), not both")
        super().__init__(search=search if search is not None else HybridSearch(**own), **kwargs)

    @property
    def k(self) -> int:
        return self.search.k

    def retrieve(self, query: str, **kwargs: Any) -> RetrievalResult:
        """`HybridSearch.retrieve`: the best passages for `query`."""
        return self.search.retrieve(query, **kwargs)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        """LangChain's `invoke(query)`; `invoke(query, k=3)` overrides the search's `k`."""
        return [
            Document(
                page_content=p.text,
                id=p.chunk_id,
                metadata=p.model_dump(mode="json", exclude={"text", "chunk_id"}),
            )
            for p in self.search.retrieve(query, k=k).passages
        ]
