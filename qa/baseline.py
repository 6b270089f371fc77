"""The usual LangChain RAG recipe, kept runnable so every claim against it can be re-measured.

RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200), the same embedding
model, `Chroma.from_documents`, `similarity_search`, and the top chunk shown as the answer.
Used by `articleqa eval --baseline` and the benchmarks; never by the product itself.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import chromadb
from chromadb.config import Settings as ChromaSettings
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_text_splitters import RecursiveCharacterTextSplitter

from articleqa.index.models import Article
from articleqa.qa.models import Answer, Citation, Passage
from articleqa.qa.retrieval import DEFAULT_K  # the same k as the product: a fair comparison


class BaselineRecipe:
    """The tutorial pipeline over `articles`, in its own temporary Chroma folder.

    Args:
        embeddings: The same embedding model the product uses (a fair comparison), run as
            the recipe runs it: sentence-transformers on PyTorch (`backend="torch"`).
        persist_dir: Where Chroma writes; a fresh temporary folder by default.
    """

    def __init__(self, embeddings: Embeddings, persist_dir: Path | None = None):
        self.embeddings = embeddings
        self._tmp = None if persist_dir else tempfile.TemporaryDirectory(prefix="articleqa-baseline-")
        self.persist_dir = Path(persist_dir or self._tmp.name)
        self.articles: dict[str, Article] = {}
        self.store: Chroma | None = None
        self._collection: chromadb.Collection | None = None

    def index(self, articles: Sequence[Article]) -> float:
        """Split, embed and store the articles as the recipe does; returns the seconds taken."""
        started = time.perf_counter()
        splitter = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200, add_start_index=True)
        docs = splitter.split_documents(Document(page_content=a.text, metadata={"article_id": a.id}) for a in articles)
        client = chromadb.PersistentClient(
            path=str(self.persist_dir), settings=ChromaSettings(anonymized_telemetry=False)
        )
        name = f"baseline-{uuid.uuid4().hex[:8]}"
        self.store = Chroma.from_documents(docs, self.embeddings, client=client, collection_name=name)
        # langchain-chroma offers no public count: the collection is asked through Chroma's own
        # client, not through the vector store's private `_collection`.
        self._collection = client.get_collection(name)
        self.articles.update({a.id: a for a in articles})
        return time.perf_counter() - started

    def chunk_count(self) -> int:
        """The chunks the recipe stored (0 before `index`)."""
        return self._collection.count() if self._collection is not None else 0

    def retrieve(self, question: str, k: int = DEFAULT_K) -> list[Passage]:
        if self.store is None:
            raise RuntimeError("index articles before asking the baseline")
        passages = []
        for doc in self.store.similarity_search(question, k=k):
            article = self.articles[doc.metadata["article_id"]]
            start = int(doc.metadata.get("start_index", 0))
            passages.append(
                Passage(
                    chunk_id=doc.id or f"{article.id}:{start}",
                    article_id=article.id,
                    title=article.title,
                    source=article.source,
                    url=article.url,
                    published_at=article.published_at,
                    text=doc.page_content,
                    start=start,
                    end=start + len(doc.page_content),
                )
            )
        return passages

    def ask(self, question: str, k: int = DEFAULT_K) -> tuple[Answer, list[Passage]]:
        """The recipe's answer: the top chunk, cited whole."""
        passages = self.retrieve(question, k)
        if not passages:
            return Answer(question=question, text="", grounded=False), passages
        top = passages[0]
        citation = Citation.of(1, top, 0, len(top.text))
        return Answer(question=question, text=top.text, grounded=True, citations=[citation]), passages

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
