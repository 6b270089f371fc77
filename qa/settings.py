"""The one settings object: `ARTICLEQA_*` environment variables, a `.env` file, CLI flags.

Read once at the edges (the CLI, the web app) and passed inward as plain values or as a
`QAOptions` (`qa_options()`); library code never reads the environment. The defaults are not
declared here: every field's default is the constant of the layer that uses it (`index` for
chunking, the model, the collection, the index folder and fetching; `qa` for k and the LLM
timeout), so a default is changed in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from articleqa.index.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
from articleqa.index.defaults import DEFAULT_HOST_DELAY
from articleqa.index.embeddings import DEFAULT_BACKEND, DEFAULT_MODEL
from articleqa.index.folder import DEFAULT_INDEX_DIR
from articleqa.index.offline import apply_offline_environment
from articleqa.index.openvino_backend import default_cache_dir
from articleqa.index.precision import DEFAULT_PRECISION, choose_precision
from articleqa.index.sources import (
    DEFAULT_FETCH_TIMEOUT,
    MAX_INPUT_BYTES,
    FetchPolicy,
    parse_network,
)
from articleqa.index.store import DEFAULT_COLLECTION
from articleqa.qa.options import DEFAULT_K, DEFAULT_LLM_TIMEOUT, QAOptions

__all__ = ["QAOptions", "Settings", "apply_offline_environment", "load_settings"]

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Configuration; every field can be set as `ARTICLEQA_<FIELD>` (e.g. ARTICLEQA_INDEX_DIR)."""

    model_config = SettingsConfigDict(
        env_prefix="ARTICLEQA_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    index_dir: Path = Field(Path(DEFAULT_INDEX_DIR), description="Folder holding the index.")
    embedding_model: str = Field(
        DEFAULT_MODEL,
        description="'bundled:all-MiniLM-L6-v2', a local sentence-transformers folder, or a "
        "model name already in the local Hugging Face cache.",
    )
    embedding_backend: Literal["auto", "openvino", "torch"] = Field(
        DEFAULT_BACKEND,
        description="How the embedding model runs: 'auto' (OpenVINO when it can run the model, "
        "else PyTorch), 'openvino' (an error if it cannot) or 'torch'.",
    )
    embedding_precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        DEFAULT_PRECISION,
        description="What OpenVINO computes the embeddings in: 'auto' (bf16 on CPUs with bfloat16 "
        "instructions, int8 on CPUs with VNNI, else fp32), or one of 'fp32', 'bf16', 'int8' "
        "(to measure another path; bf16 only where the CPU has it).",
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="Where the one-time OpenVINO export of the embedding model is kept "
        "(default $XDG_CACHE_HOME/articleqa, usually ~/.cache/articleqa).",
    )
    chunk_size: int = Field(DEFAULT_CHUNK_SIZE, ge=50, description="Target characters per chunk.")
    chunk_overlap: int = Field(
        DEFAULT_CHUNK_OVERLAP, ge=0, description="Characters of whole sentences shared by neighbouring chunks."
    )
    chroma_url: str | None = Field(
        None, description="Chroma server URL (e.g. http://127.0.0.1:8000); unset: embedded Chroma in the index folder."
    )
    database_url: str | None = Field(
        None,
        description="PostgreSQL database for the articles, lexical index and record manager, as a SQLAlchemy "
        "URL (e.g. postgresql+psycopg://user:password@host:5432/articleqa); unset: SQLite files in the index folder.",
    )
    collection: str = Field(DEFAULT_COLLECTION, description="Chroma collection name.")
    k: int = Field(DEFAULT_K, ge=1, description="Passages retrieved per question.")
    answer_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Abstain when P(the articles answer the question) is below this "
        "(default: the calibrated threshold shipped with the answer scorer).",
    )
    fetch_timeout: float = Field(DEFAULT_FETCH_TIMEOUT, gt=0, description="Seconds allowed for fetching one URL.")
    max_input_mb: float = Field(MAX_INPUT_BYTES / MIB, gt=0, description="Largest file, page or upload read, in MiB.")
    allow_private_urls: bool = Field(
        False,
        description="Let URLs reach loopback, private and link-local addresses (off: only public "
        "addresses, checked again after every redirect, so web users cannot reach the server's network).",
    )
    allowed_networks: list[str] = Field(
        default_factory=list,
        description='CIDR blocks URLs may reach although they are not public, e.g. ["10.1.0.0/16"] '
        "for an intranet news site (JSON list in the environment variable).",
    )

    watch_host_delay: float = Field(
        DEFAULT_HOST_DELAY,
        ge=0,
        description="Seconds between two requests to the same host while following feeds "
        "(`articleqa watch`, `serve --watch`); requests to one host are never made in parallel.",
    )

    def fetch_policy(self) -> FetchPolicy:
        """The limits and address rules every input is read under."""
        return FetchPolicy(
            timeout=self.fetch_timeout,
            max_bytes=int(self.max_input_mb * MIB),
            allow_private=self.allow_private_urls,
            allowed_networks=tuple(self.allowed_networks),
        )

    llm: str | None = Field(
        None,
        description="Answerer: 'extractive' (default, offline) or a LangChain chat model as "
        "PROVIDER:MODEL, e.g. 'ollama:llama3.2', 'openai:gpt-4o-mini'. API keys come from the "
        "provider's own environment variable (e.g. OPENAI_API_KEY).",
    )
    llm_base_url: str | None = Field(
        None, description="The LLM server's URL, e.g. http://127.0.0.1:8080/v1 for an OpenAI-compatible server."
    )
    llm_timeout: float = Field(
        DEFAULT_LLM_TIMEOUT,
        gt=0,
        description="Seconds allowed for one complete LLM reply; then the extractive answer is shown.",
    )

    def qa_options(self) -> QAOptions:
        """The options for `ArticleQA.from_options`, `ui.app.serve` and `ui.library.Library`:
        everything that decides how questions are answered, in one object."""
        return QAOptions(
            embedding_model=self.embedding_model,
            embedding_backend=self.embedding_backend,
            embedding_precision=self.embedding_precision,
            cache_dir=self.cache_dir,
            chroma_url=self.chroma_url,
            database_url=self.database_url,
            collection=self.collection,
            k=self.k,
            answer_threshold=self.answer_threshold,
            llm=self.llm,
            llm_base_url=self.llm_base_url,
            llm_timeout=self.llm_timeout,
        )

    @field_validator("embedding_precision")
    @classmethod
    def _precision_runs_here(cls, value: str) -> str:
        choose_precision(value)  # raises ValueError for bf16 on a CPU without it, naming the CPU
        return value

    @field_validator("allowed_networks")
    @classmethod
    def _networks_parse(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_network(entry)  # raises ValueError naming the entry and valid examples
        return value

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, value: int, info: Any) -> int:
        size = info.data.get("chunk_size", DEFAULT_CHUNK_SIZE)
        if value >= size:
            raise ValueError(f"chunk_overlap ({value}) must be smaller than chunk_size ({size})")
        return value


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and `.env`, with non-None `overrides` (CLI flags) on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
