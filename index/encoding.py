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
`layout_of` names anything else (`UnsupportedModelError`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

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


def layout_of(st_model: SentenceTransformer) -> Layout:
    """The model's pre- and post-processing, or `UnsupportedModelError` naming what was found."""
    modules = list(st_model)
    names = [type(m).__name__ for m in modules]
    if len(modules) not in (2, 3) or names[0] != "Transformer" or names[1] != "Pooling":
        raise UnsupportedModelError(
            f"only Transformer -> Pooling [-> Normalize] models are supported, not {' -> '.join(names)}"
        )
    if len(modules) == 3 and names[2] != "Normalize":
        raise UnsupportedModelError(f"unsupported last module {names[2]!r} (expected Normalize)")
    pooling = modules[1].get_config_dict()
    mode = pooling.get("pooling_mode")
    if mode is None:  # sentence-transformers < 6 spells the mode as one flag per mode
        modes = [k.removeprefix("pooling_mode_") for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
        mode = modes[0] if len(modes) == 1 else "+".join(modes)
    if mode not in ("mean", "mean_tokens"):
        raise UnsupportedModelError(f"unsupported pooling mode {mode!r} (only mean pooling is)")
    if not hasattr(modules[0], "auto_model"):
        raise UnsupportedModelError("the Transformer module has no Hugging Face model to run")
    return Layout(
        max_seq_length=int(st_model.max_seq_length),
        lowercase=bool(getattr(modules[0], "do_lower_case", False)),
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
        tokenizer: The model's Hugging Face tokenizer (a fast one, for span offsets).
        runner: Runs the transformer (see `Runner`).
        layout: From `layout_of`.
        input_names: The inputs `runner` takes (default: what the tokenizer returns).
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
        features = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.layout.max_seq_length,
            return_tensors="np",
            return_offsets_mapping=offsets,
        )
        spans = features.pop("offset_mapping", None)
        inputs = {
            name: np.asarray(value, dtype=np.int64)
            for name, value in features.items()
            if self.input_names is None or name in self.input_names
        }
        return inputs, np.asarray(features["attention_mask"]).astype(bool), spans

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
