"""`QAOptions`: everything that decides how questions are answered over an index folder.

One typed object handed from the settings (`qa.settings.Settings.qa_options()`) to
`ArticleQA.from_options`, the web app's `ui.app.serve` and `ui.library.Library`, instead of
the same ten keyword arguments repeated at every layer. Its defaults are the constants of the
layers that own them (the index's in `index`, the answerer's in `qa`), declared once there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from articleqa.index.embeddings import DEFAULT_BACKEND, DEFAULT_MODEL, Backend
from articleqa.index.precision import DEFAULT_PRECISION, Precision
from articleqa.index.store import DEFAULT_COLLECTION
from articleqa.qa.llm import DEFAULT_TIMEOUT as DEFAULT_LLM_TIMEOUT
from articleqa.qa.retrieval import DEFAULT_K

__all__ = ["DEFAULT_K", "DEFAULT_LLM_TIMEOUT", "QAOptions"]


@dataclass(frozen=True)
class QAOptions:
    """How an index folder is opened and its questions answered.

    Attributes:
        embedding_model: The model the index was built with (see `index.open_index`).
        embedding_backend: "auto", "openvino" or "torch"; `cache_dir` keeps the OpenVINO export.
        embedding_precision: "auto", "fp32", "bf16" or "int8" (`index.precision`).
        chroma_url: A Chroma server's URL; None: embedded Chroma in the index folder.
        database_url: A PostgreSQL database's SQLAlchemy URL holding the articles, lexical
            index and record manager; None: SQLite files in the index folder.
        collection: The Chroma collection name.
        k: Passages retrieved per question.
        answer_threshold: Abstain below this probability that the articles answer (None: the
            calibrated threshold shipped with the answer scorer).
        llm: None or "extractive" (the offline answerer), or a chat model as "provider:model".
        llm_base_url: The model server's URL.
        llm_timeout: Seconds allowed for one complete LLM reply.
    """

    embedding_model: str = DEFAULT_MODEL
    embedding_backend: Backend = DEFAULT_BACKEND
    embedding_precision: Precision = DEFAULT_PRECISION
    cache_dir: Path | None = None
    chroma_url: str | None = None
    database_url: str | None = None
    collection: str = DEFAULT_COLLECTION
    k: int = DEFAULT_K
    answer_threshold: float | None = None
    llm: str | None = None
    llm_base_url: str | None = None
    llm_timeout: float = DEFAULT_LLM_TIMEOUT
