"""The answer cross-encoder: reads the question and a candidate sentence together.

The feature model of `qa.scorer` judges a sentence by its overlap with the question; it cannot
tell "reports the event" from "gives the detail asked for". The cross-encoder reads both texts
at once (every question token attends to every sentence token), so it can. It is the bundled
all-MiniLM-L6-v2 transformer fine-tuned by `training/train_cross_encoder.py` on the fitting
questions (mean pooling over the pair's tokens, one linear unit on top), loaded from
`qa/weights/cross_encoder.safetensors` (float16, without the word-embedding matrix, which
stayed frozen in training and is taken from the bundled model).

It is the optional second stage of the scorer (`qa.scorer.Reranker`): only the feature model's
best `k` candidates are read (each pair costs a transformer pass), and a small calibrated
combiner joins both scores. The shipped scorer has no second stage: none trained so far earned
its cost (training/README.md), so no weights file ships; this module and the training scripts
stay for the next one. It runs on OpenVINO like the embedder (exported once, cached, checked
against PyTorch; a cached export loads with `tokenizers` and OpenVINO alone, no PyTorch
import), on PyTorch where OpenVINO cannot run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from articleqa.index.encoding import tokenizer_of, torch_runner
from articleqa.index.offline import HUB_OFFLINE, apply_offline_environment
from articleqa.index.openvino_backend import OpenVINORunner, default_cache_dir
from articleqa.index.precision import float_precision
from articleqa.qa.weights import file_sha256, shipped

if TYPE_CHECKING:
    from articleqa.qa.features import Candidate

WEIGHTS_FILE = "cross_encoder.safetensors"
BATCH = 8

log = logging.getLogger(__name__)


class CrossEncoderError(RuntimeError):
    """The cross-encoder's weights are missing, damaged or do not fit the bundled model."""


def pair_text(candidate: Candidate) -> str:
    """The second text of a pair: the sentence first (it survives truncation), then the
    article's title, source and date, which questions often name ("according to TechCrunch")."""
    p = candidate.passage
    meta = ", ".join(x for x in (p.source, p.published_at.isoformat() if p.published_at else None) if x)
    title = f"{p.title} ({meta})" if meta else p.title
    return f"{candidate.text} [{title}]"


def candidate_key(candidate: Candidate) -> str:
    """Identifies a candidate across runs: article id and offsets."""
    return f"{candidate.passage.article_id}:{candidate.start}:{candidate.end}"


def weights_path() -> Path:
    return shipped(WEIGHTS_FILE)


@dataclass(frozen=True)
class Head:
    weight: np.ndarray  # (dim,)
    bias: float
    max_length: int
    training: dict


class CrossEncoder:
    """Logits for (question, candidate) pairs; loads on first use, thread-safe.

    Args:
        base_model: The bundled sentence-transformers model's folder (the cross-encoder's
            architecture, tokenizer and word embeddings).
        weights: The trained file (default: the one shipped in the package).
        backend: `auto` (OpenVINO, else PyTorch), `openvino` or `torch`.
        cache_dir: Where the OpenVINO export is kept.
    """

    def __init__(
        self, base_model: str, weights: Path | None = None, *, backend: str = "auto", cache_dir: Path | None = None
    ):
        self.base_model = base_model
        self.weights = Path(weights) if weights else weights_path()
        self.requested_backend = backend
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.backend = ""
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any, Head] | None = None
        self._sha256: str | None = None

    @property
    def sha256(self) -> str:
        """The weights file's SHA-256 (read once)."""
        if self._sha256 is None:
            try:
                self._sha256 = file_sha256(self.weights)
            except OSError as exc:
                raise CrossEncoderError(f"cannot read the cross-encoder's weights at {self.weights}: {exc}") from None
        return self._sha256

    def _load(self) -> tuple[Any, Any, Head]:
        with self._lock:
            if self._loaded is None:
                self._loaded = self._build()
            return self._loaded

    def _head(self) -> Head:
        """The linear head and training record, read without PyTorch."""
        from safetensors import safe_open

        try:
            with safe_open(str(self.weights), framework="np") as f:
                keys = set(f.keys())
                if "head.weight" not in keys or "head.bias" not in keys:
                    raise CrossEncoderError(f"the cross-encoder's weights at {self.weights} have no head")
                weight = f.get_tensor("head.weight").astype(np.float32).reshape(-1)
                bias = float(f.get_tensor("head.bias").astype(np.float32).reshape(-1)[0])
                metadata = f.metadata() or {}
        except CrossEncoderError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unreadable file
            raise CrossEncoderError(
                f"cannot read the cross-encoder's weights at {self.weights}: {exc}. Reinstall the package, "
                "or retrain them (training/README.md)"
            ) from None
        return Head(
            weight=weight,
            bias=bias,
            max_length=int(metadata.get("max_length", 128)),
            training=json.loads(metadata.get("training", "{}")),
        )

    def _pytorch_model(self) -> Any:
        """The bundled model with the trained encoder weights in place (imports PyTorch)."""
        from safetensors import safe_open
        from sentence_transformers import SentenceTransformer

        with safe_open(str(self.weights), framework="pt") as f:
            encoder = {
                k.removeprefix("encoder."): f.get_tensor(k).float() for k in f.keys() if k.startswith("encoder.")
            }
        st = SentenceTransformer(self.base_model, device="cpu")
        missing, unexpected = st[0].auto_model.load_state_dict(encoder, strict=False)
        # Only the frozen word embeddings (and the unused pooler, if the model has one) come
        # from the bundled model; anything else missing means the file does not fit it.
        missing = [
            k
            for k in missing
            if k != "embeddings.word_embeddings.weight"
            and not k.startswith("pooler.")
            and not k.endswith("position_ids")
        ]
        if missing or unexpected:
            raise CrossEncoderError(
                f"the cross-encoder's weights at {self.weights} do not fit the model {self.base_model!r} "
                f"(missing {missing[:3]}, unexpected {list(unexpected)[:3]})"
            )
        return st

    def _source(self) -> Any:
        """The OpenVINO export's source: keyed by the bundled model and the weights file, so a
        cached export loads with `tokenizers` and OpenVINO alone (PyTorch only to export)."""
        from articleqa.index.encoding import layout_from_folder, load_tokenizer
        from articleqa.index.openvino_backend import ModelSource

        folder = Path(self.base_model)
        base = ModelSource.from_folder(folder, lambda: None)
        key = hashlib.sha256(f"cross-encoder\0{base.key}\0{self.sha256}".encode()).hexdigest()[:24]
        layout = layout_from_folder(folder)
        return ModelSource(key, layout, lambda: load_tokenizer(folder, layout), self._pytorch_model)

    def _build(self) -> tuple[Any, Any, Head]:
        # At load time, like the embedder: a library import never changes the environment.
        apply_offline_environment(HUB_OFFLINE)
        head = self._head()
        runner: Any = None
        tokenizer: Any = None
        if self.requested_backend != "torch":
            try:
                source = self._source()
                runner = OpenVINORunner.load(source, self.cache_dir, float_precision())
                tokenizer = source.tokenizer()
                self.backend = "openvino"
            except Exception as exc:  # noqa: BLE001 - BackendUnavailable, or a model folder it cannot read
                if self.requested_backend == "openvino" or isinstance(exc, CrossEncoderError):
                    raise
                log.warning("cross-encoder: OpenVINO unavailable, using PyTorch: %s", exc)
        if runner is None:
            st = self._pytorch_model()
            runner = torch_runner(st)
            tokenizer = tokenizer_of(st)
            self.backend = "torch"
        # Pairs: truncated longest first to the length the model was trained with.
        tokenizer.enable_truncation(max_length=head.max_length, strategy="longest_first")
        input_names = getattr(runner, "input_names", None)
        return tokenizer, (runner, input_names), head

    @property
    def training(self) -> dict:
        """The training record stored with the weights (data hash, seed, metrics)."""
        return self._load()[2].training

    def logits(self, question: str, texts: list[str]) -> np.ndarray:
        """One logit per text: higher means the text more likely answers the question."""
        if not texts:
            return np.zeros(0, np.float32)
        tokenizer, (runner, input_names), head = self._load()
        out = np.empty(len(texts), np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for at in range(0, len(order), BATCH):
            batch = order[at : at + BATCH]
            encodings = tokenizer.encode_batch([(question, texts[i]) for i in batch])
            columns = {
                "input_ids": [e.ids for e in encodings],
                "attention_mask": [e.attention_mask for e in encodings],
                "token_type_ids": [e.type_ids for e in encodings],
            }
            inputs = {k: np.asarray(v, np.int64) for k, v in columns.items() if input_names is None or k in input_names}
            states = runner(inputs)
            mask = np.asarray(columns["attention_mask"], np.float32)[..., None]
            pooled = (states * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            out[batch] = pooled @ head.weight + head.bias
        return out


_SHARED: dict[tuple[str, Path | None], CrossEncoder] = {}
_SHARED_LOCK = threading.Lock()


def shared_cross_encoder(backend: str = "auto", cache_dir: Path | None = None) -> CrossEncoder:
    """The shipped cross-encoder on the bundled model, one per (backend, cache) per process."""
    from articleqa.index.embeddings import DEFAULT_MODEL, resolve_model_path

    with _SHARED_LOCK:
        key = (backend, Path(cache_dir) if cache_dir else None)
        if key not in _SHARED:
            _SHARED[key] = CrossEncoder(resolve_model_path(DEFAULT_MODEL), backend=backend, cache_dir=cache_dir)
        return _SHARED[key]
