"""Tokenise, run a transformer, mean-pool: vectors for whole texts and for spans inside them.

`TokenEncoder` re-does what sentence-transformers does around the transformer (its tokenizer
and `max_seq_length`, mean pooling over the attention mask, unit length) so that

- the transformer itself can run on OpenVINO or PyTorch (a `Runner`: token ids in, token
  states out), and
- one forward pass over a chunk also gives a vector for each of its sentences: the mean of
  the chunk's token states over the sentence's tokens ("late chunking"). The indexer stores
  them, so the answerer needs no sentence encoding at question time. On tests/data/eval.jsonl
  the answerer was as accurate with these vectors as with sentences encoded one by one
  (0.632 both, abstention rates unchanged; docs/BENCHMARKS.md).

Only models made of exactly Transformer -> mean Pooling [-> Normalize] are re-done here;
`layout_of` (a loaded model) and `layout_from_folder` (its files, without loading PyTorch) name
anything else (`UnsupportedModelError`). Tokenising uses the `tokenizers` library directly
(the Rust tokenizer inside every Hugging Face fast tokenizer), so a process whose model runs
on OpenVINO never imports PyTorch or transformers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

Runner = Callable[[dict[str, np.ndarray]], np.ndarray]
"""Token ids (input_ids, attention_mask, ... as int64 (batch, length)) -> states (batch, length, dim).

A runner may also have `map(list_of_inputs) -> list_of_states` to run many batches at once
(OpenVINO runs two in parallel, one per core); `TokenEncoder` uses it when present."""


# Batches handed to a runner's `map` at once (at most 32 x 8 x 256 x 384 floats, 100 MB): one
# window holds a whole indexing batch, so both cores stay busy to its end.
MAP_WINDOW = 32


class UnsupportedModelError(ValueError):
    """The model's pipeline is not Transformer -> mean Pooling [-> Normalize]."""


@dataclass(frozen=True)
class Layout:
    """What sentence-transformers does around the transformer."""

    max_seq_length: int
    lowercase: bool
    dimension: int


def _check_pooling(pooling: dict[str, Any]) -> None:
    mode = pooling.get("pooling_mode")
    if mode is None:  # sentence-transformers < 6 spells the mode as one flag per mode
        modes = [k.removeprefix("pooling_mode_") for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
        mode = modes[0] if len(modes) == 1 else "+".join(modes)
    if mode not in ("mean", "mean_tokens"):
        raise UnsupportedModelError(f"unsupported pooling mode {mode!r} (only mean pooling is)")


def _check_module_names(names: list[str]) -> None:
    if len(names) not in (2, 3) or names[0] != "Transformer" or names[1] != "Pooling":
        raise UnsupportedModelError(
            f"only Transformer -> Pooling [-> Normalize] models are supported, not {' -> '.join(names)}"
        )
    if len(names) == 3 and names[2] != "Normalize":
        raise UnsupportedModelError(f"unsupported last module {names[2]!r} (expected Normalize)")


def layout_from_folder(folder: Path) -> Layout:
    """The layout of a sentence-transformers model folder, read from its configuration files
    (modules.json, sentence_bert_config.json, the pooling config) without loading the model.

    Raises:
        UnsupportedModelError: The folder is not such a model, or not one `TokenEncoder` re-does.
    """
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        _check_module_names([m["type"].rsplit(".", 1)[-1] for m in modules])
        if modules[0].get("path", ""):
            raise UnsupportedModelError("the Transformer module is not at the top of the model folder")
        config = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        pooling = json.loads((folder / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
        if not (folder / "tokenizer.json").is_file():
            raise UnsupportedModelError("the model folder has no tokenizer.json (a fast tokenizer)")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, UnsupportedModelError):
            raise
        raise UnsupportedModelError(f"{folder} is not a readable sentence-transformers model folder: {exc}") from exc
    _check_pooling(pooling)
    return Layout(
        max_seq_length=int(config["max_seq_length"]),
        lowercase=bool(config.get("do_lower_case", False)),
        dimension=int(pooling["word_embedding_dimension"]),
    )


# Batches are padded to a multiple of this many tokens. OpenVINO's CPU plugin keeps compiled
# kernels per input shape, so every distinct batch length costs memory: indexing the 292 bundled
# articles in int8 peaked at 1,275 MB padded to the longest text and at 770 MB padded to a
# multiple of 16, and ran no slower (19.9 s against 23.0 s; bench/NOTES.md). The padding is
# masked out of every mean, so vectors do not change.
PAD_MULTIPLE = 16


def configure_tokenizer(tokenizer: Tokenizer, layout: Layout, pad_id: int, pad_token: str) -> Tokenizer:
    """`tokenizer` set to truncate at the model's window and pad each batch to its longest text,
    as sentence-transformers calls it (`padding=True, truncation=True, max_length=...`), rounded
    up to a multiple of `PAD_MULTIPLE` tokens where that stays within the window."""
    tokenizer.enable_truncation(max_length=layout.max_seq_length)
    multiple = PAD_MULTIPLE if layout.max_seq_length % PAD_MULTIPLE == 0 else None
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token, pad_to_multiple_of=multiple)
    return tokenizer


def load_tokenizer(folder: Path, layout: Layout) -> Tokenizer:
    """The model folder's tokenizer.json as a `tokenizers.Tokenizer`, configured for `layout`."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    padding = tokenizer.padding or {}
    pad_token = padding.get("pad_token") or _special_token(folder, "pad_token") or "[PAD]"
    pad_id = tokenizer.token_to_id(pad_token)
    if pad_id is None:
        raise UnsupportedModelError(f"the tokenizer in {folder} has no padding token {pad_token!r}")
    return configure_tokenizer(tokenizer, layout, pad_id, pad_token)


def _special_token(folder: Path, name: str) -> str | None:
    try:
        value = json.loads((folder / "special_tokens_map.json").read_text(encoding="utf-8")).get(name)
    except (OSError, ValueError):
        return None
    return value.get("content") if isinstance(value, dict) else value


def tokenizer_of(st_model: SentenceTransformer) -> Tokenizer:
    """A copy of a loaded model's Rust tokenizer, configured for its layout."""
    from tokenizers import Tokenizer

    hf = st_model[0].tokenizer
    if not getattr(hf, "is_fast", False):
        raise UnsupportedModelError("the model has no fast tokenizer (needed for token offsets)")
    copy = Tokenizer.from_str(hf.backend_tokenizer.to_str())
    return configure_tokenizer(copy, layout_of(st_model), hf.pad_token_id, hf.pad_token)


def layout_of(st_model: SentenceTransformer) -> Layout:
    """The model's pre- and post-processing, or `UnsupportedModelError` naming what was found."""
    modules = list(st_model)
    _check_module_names([type(m).__name__ for m in modules])
    _check_pooling(modules[1].get_config_dict())
    if not hasattr(modules[0], "auto_model"):
        raise UnsupportedModelError("the Transformer module has no Hugging Face model to run")
    return Layout(
        max_seq_length=int(st_model.max_seq_length),
        lowercase=bool(getattr(modules[0], "do_lower_case", False)),
        dimension=int(st_model.get_embedding_dimension()),
    )


def torch_runner(st_model: SentenceTransformer) -> Runner:
    """The model's own PyTorch transformer as a `Runner`."""
    import torch

    auto = st_model[0].auto_model.eval()

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            out = auto(**{k: torch.from_numpy(v) for k, v in inputs.items()})
        return out.last_hidden_state.float().numpy()

    return run


@dataclass(frozen=True)
class SpanVectors:
    """Unit vectors for spans of one text: `spans[i] = (start, end)` offsets, `vectors[i]`."""

    spans: np.ndarray  # (m, 2) int32
    vectors: np.ndarray  # (m, dim) float32

    def to_blobs(self) -> tuple[bytes, bytes]:
        """Compact storage: int32 offsets and float16 vectors (cosines change by < 1e-3)."""
        return self.spans.astype("<i4").tobytes(), self.vectors.astype("<f2").tobytes()

    @classmethod
    def from_blobs(cls, spans: bytes, vectors: bytes) -> SpanVectors:
        offsets = np.frombuffer(spans, dtype="<i4").reshape(-1, 2)
        matrix = np.frombuffer(vectors, dtype="<f2").astype(np.float32)
        return cls(offsets, matrix.reshape(len(offsets), -1) if len(offsets) else matrix.reshape(0, 0))

    def lookup(self) -> dict[tuple[int, int], np.ndarray]:
        return {(int(s), int(e)): v for (s, e), v in zip(self.spans, self.vectors)}


def _unit(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.clip(np.linalg.norm(matrix, axis=-1, keepdims=True), 1e-12, None)).astype(np.float32)


class TokenEncoder:
    """Texts to unit vectors through `runner`, batched by length like sentence-transformers.

    Args:
        tokenizer: The model's `tokenizers.Tokenizer`, configured by `load_tokenizer` or
            `tokenizer_of` (padding and truncation as sentence-transformers does them).
        runner: Runs the transformer (see `Runner`).
        layout: From `layout_of` or `layout_from_folder`.
        input_names: The inputs `runner` takes (default: input_ids, attention_mask and
            token_type_ids).
    """

    def __init__(self, tokenizer: Any, runner: Runner, layout: Layout, input_names: set[str] | None = None):
        self.tokenizer = tokenizer
        self.runner = runner
        self.layout = layout
        self.input_names = input_names

    def _batches(self, texts: Sequence[str], batch_size: int):
        """Index batches, longest texts first, so a batch pads to similar lengths."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), batch_size):
            yield order[start : start + batch_size]

    def _tokenize(self, texts: list[str], offsets: bool) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | None]:
        if self.layout.lowercase:
            texts = [t.lower() for t in texts]
        encodings = self.tokenizer.encode_batch(texts)
        features = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        spans = np.array([e.offsets for e in encodings], dtype=np.int64) if offsets else None
        inputs = {
            name: value for name, value in features.items() if self.input_names is None or name in self.input_names
        }
        return inputs, features["attention_mask"].astype(bool), spans

    def _run(self, texts: Sequence[str], batch_size: int, offsets: bool):
        """(indices, token states, attention mask, offsets) per batch, in batch order.

        Batches go to the runner's `map` (when it has one) a window at a time, so memory
        stays bounded (token states are batch x length x dim floats) however many texts come.
        """
        batches = list(self._batches(texts, batch_size))
        many = getattr(self.runner, "map", None)
        for at in range(0, len(batches), MAP_WINDOW):
            window = batches[at : at + MAP_WINDOW]
            tokenized = [self._tokenize([texts[i] for i in batch], offsets) for batch in window]
            runs = [inputs for inputs, _, _ in tokenized]
            states = many(runs) if many is not None and len(runs) > 1 else [self.runner(r) for r in runs]
            for batch, (_, mask, spans), state in zip(window, tokenized, states):
                yield batch, state, mask, spans

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors, in the order of `texts`."""
        result: np.ndarray | None = None
        for batch, states, mask, _ in self._run(texts, batch_size, offsets=False):
            pooled = _mean(states, mask)
            if result is None:
                result = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            result[batch] = pooled
        return result if result is not None else np.empty((0, 0), dtype=np.float32)

    def encode_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]], batch_size: int = 32
    ) -> tuple[np.ndarray, list[SpanVectors]]:
        """Whole-text vectors (as `encode`) and, from the same pass, one vector per span.

        A span's vector is the mean of the states of the tokens lying inside it. Spans with
        no token inside the model's window (cut off by `max_seq_length`) are left out of the
        result, so callers can tell them apart and encode them on their own if needed.
        """
        if len(spans) != len(texts):
            raise ValueError(f"got {len(spans)} span lists for {len(texts)} texts")
        vectors: np.ndarray | None = None
        per_text: list[SpanVectors] = [SpanVectors(np.empty((0, 2), np.int32), np.empty((0, 0), np.float32))] * len(
            texts
        )
        for batch, states, valid, offsets in self._run(texts, batch_size, offsets=True):
            pooled = _mean(states, valid)
            if vectors is None:
                vectors = np.empty((len(texts), pooled.shape[1]), dtype=np.float32)
            vectors[batch] = pooled
            real = valid & (offsets[..., 1] > offsets[..., 0])  # no [CLS]/[SEP]/padding
            for row, i in enumerate(batch):
                per_text[i] = _pool_spans(states[row], offsets[row], real[row], spans[i])
        if vectors is None:
            return np.empty((0, 0), dtype=np.float32), []
        return vectors, per_text


def _pool_spans(
    states: np.ndarray, offsets: np.ndarray, real: np.ndarray, spans: Sequence[tuple[int, int]]
) -> SpanVectors:
    """Mean token state over each span; spans without a token inside are left out."""
    dim = states.shape[-1]
    bounds = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    # membership[j, t]: token t lies inside span j (special tokens and padding never do).
    membership = (
        real[None, :] & (offsets[None, :, 0] >= bounds[:, :1]) & (offsets[None, :, 1] <= bounds[:, 1:])
    ).astype(np.float32)
    counts = membership.sum(axis=1)
    sums = membership @ states
    kept = counts > 0
    means = sums[kept] / counts[kept, None]
    return SpanVectors(
        bounds[kept].astype(np.int32), _unit(means.astype(np.float32)) if kept.any() else np.empty((0, dim), np.float32)
    )


def _mean(states: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(np.float32)
    summed = (states * weights).sum(axis=1)
    return _unit(summed / np.clip(weights.sum(axis=1), 1e-9, None))
