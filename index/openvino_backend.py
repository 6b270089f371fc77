"""Run a sentence-transformers model's transformer through OpenVINO on the CPU.

Same model, same weights, faster execution: on 2 CPU cores OpenVINO's CPU runtime encoded
the bundled MiniLM's chunks 3.8x faster than PyTorch on a CPU with bfloat16 instructions
(AVX512-BF16/AMX, which OpenVINO uses by default) and 1.4x when held to float32, with vectors
at cosine >= 0.9999 to PyTorch's (docs/BENCHMARKS.md; tests/test_embedding_backends.py).

- Export once: the loaded PyTorch module is converted (`openvino.convert_model`, about 5 s)
  and saved as OpenVINO IR in the cache folder under a key made of the weights, the config
  and the library versions; later processes only read the IR. A damaged cache entry is
  exported again, never trusted.
- Checked before use: a fresh export encodes a few probe texts with both backends and is
  used only if they agree (cosine >= MIN_PROBE_COSINE).
- Only the transformer runs here (`OpenVINORunner`: token ids in, token states out);
  tokenisation and pooling are `index.encoding.TokenEncoder`'s, for models made of
  Transformer -> mean Pooling [-> Normalize] (`BackendUnavailable` names anything else).
- No telemetry: OpenVINO's Python package sends a usage event on import through the optional
  `openvino_telemetry` package (opt-out since 2024). `import_openvino` marks that package as
  absent in this process before OpenVINO is imported, so OpenVINO uses its built-in no-op stub.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from articleqa.index.encoding import Layout, TokenEncoder, UnsupportedModelError, layout_of

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Bump when the export recipe changes, so old cache entries are not reused.
EXPORT_FORMAT = 1
MIN_PROBE_COSINE = 0.999
PROBE_TEXTS = [
    "Who called the meeting a waste of time?",
    "Another senior European official was even more blunt in his assessment.",
    "The earthquake struck at 10:17 local time, 30 km south-west of the city, and was followed by several aftershocks.",
]


class BackendUnavailable(RuntimeError):
    """OpenVINO cannot run this model here; the message says why."""


def import_openvino() -> Any:
    """Import OpenVINO with its telemetry package made unavailable (see the module docstring)."""
    if "openvino" not in sys.modules:
        # A None entry makes `import openvino_telemetry` raise ImportError; OpenVINO then
        # falls back to its own no-op stub (openvino/tools/ovc/telemetry_stub.py).
        sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailable(f"the 'openvino' package is not installed ({exc})") from exc
    return openvino


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/articleqa` (usually ~/.cache/articleqa)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "articleqa"


def _export_key(st_model: SentenceTransformer, openvino: Any) -> str:
    """A digest of everything the exported graph depends on: weights, config, versions."""
    import torch
    import transformers

    auto = st_model[0].auto_model
    digest = hashlib.sha256()
    for part in (
        f"format={EXPORT_FORMAT}",
        f"openvino={openvino.__version__}",
        f"torch={torch.__version__}",
        f"transformers={transformers.__version__}",
        type(auto).__name__,
        auto.config.to_json_string(use_diff=False),
    ):
        digest.update(part.encode() + b"\0")
    for name, tensor in sorted(auto.state_dict().items()):
        digest.update(name.encode() + b"\0")
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:24]


class OpenVINORunner:
    """The model's transformer compiled for OpenVINO's CPU runtime: a `index.encoding.Runner`.

    Build with `OpenVINORunner.load`. Thread-safe: calls are serialised by a lock. One batch
    (`__call__`, e.g. a question) runs on the latency-compiled model, all cores on one
    request; many batches (`map`, indexing) run on a throughput-compiled copy, compiled on
    first use, with one request per core in parallel: 11% faster on 2 cores.

    Attributes:
        model_dir: The cache entry holding model.xml / model.bin / meta.json.
        exported: True if this call exported the model, False if it was read from the cache.
        input_names: The inputs the exported graph takes.
    """

    def __init__(self, core: Any, model: Any, compiled: Any, model_dir: Path, exported: bool):
        self._core = core
        self._model = model
        self._request = compiled.create_infer_request()
        self._queue: Any = None
        self._lock = threading.Lock()
        self.input_names = {p.get_any_name() for p in compiled.inputs}
        self.model_dir = model_dir
        self.exported = exported

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        with self._lock:
            # Copy out: the request reuses its output buffer on the next call.
            return np.array(self._request.infer(inputs)[0], copy=True)

    def map(self, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """Token states for each batch, running batches in parallel (one request per core)."""
        openvino = import_openvino()
        with self._lock:
            if self._queue is None:
                compiled = self._core.compile_model(self._model, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
                self._queue = openvino.AsyncInferQueue(compiled)
            results: list[np.ndarray | None] = [None] * len(batches)

            def done(request: Any, index: int) -> None:
                results[index] = np.array(request.get_output_tensor(0).data, copy=True)

            self._queue.set_callback(done)
            try:
                for index, inputs in enumerate(batches):
                    self._queue.start_async(inputs, index)
            finally:
                # Also on Ctrl-C: requests still running when the process exits abort it.
                self._queue.wait_all()
        return results  # type: ignore[return-value]

    @classmethod
    def load(cls, st_model: SentenceTransformer, cache_dir: Path) -> OpenVINORunner:
        """Read the cached export for `st_model`, exporting (and checking) it first if needed.

        Raises:
            BackendUnavailable: OpenVINO is missing, the model's pipeline is unsupported, the
                export failed, or the export's vectors disagree with PyTorch's.
        """
        openvino = import_openvino()
        try:
            layout = layout_of(st_model)
        except UnsupportedModelError as exc:
            raise BackendUnavailable(str(exc)) from exc
        tokenizer = st_model[0].tokenizer
        key = _export_key(st_model, openvino)
        model_dir = Path(cache_dir).expanduser() / "openvino" / key
        core = openvino.Core()
        exported = False
        if not (model_dir / "meta.json").is_file():
            _export(st_model, tokenizer, layout, model_dir, openvino)
            exported = True
        try:
            model = core.read_model(model_dir / "model.xml")
            compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        except Exception as first:  # noqa: BLE001 - a damaged cache entry: export again, once
            if exported:
                raise BackendUnavailable(f"OpenVINO cannot compile the exported model: {first}") from first
            shutil.rmtree(model_dir, ignore_errors=True)
            _export(st_model, tokenizer, layout, model_dir, openvino)
            exported = True
            try:
                model = core.read_model(model_dir / "model.xml")
                compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
            except Exception as exc:  # noqa: BLE001
                raise BackendUnavailable(f"OpenVINO cannot compile the exported model: {exc}") from exc
        runner = cls(core, model, compiled, model_dir, exported)
        if exported:
            _check_against_pytorch(st_model, TokenEncoder(tokenizer, runner, layout, runner.input_names), model_dir)
        return runner


def _export(st_model: SentenceTransformer, tokenizer: Any, layout: Layout, model_dir: Path, openvino: Any) -> None:
    """Convert the transformer to OpenVINO IR in a temporary folder, then move it into place."""
    import warnings

    import torch

    auto = st_model[0].auto_model.eval()
    example = dict(
        tokenizer(PROBE_TEXTS[:2], padding=True, truncation=True, max_length=layout.max_seq_length, return_tensors="pt")
    )

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model: torch.nn.Module):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):  # noqa: ANN001
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state

    model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=model_dir.parent))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer warnings about constant shapes
            converted = openvino.convert_model(LastHiddenState(auto), example_input=example)
        openvino.save_model(converted, staging / "model.xml")
        (staging / "meta.json").write_text(
            json.dumps({"format": EXPORT_FORMAT, "openvino": openvino.__version__, "inputs": sorted(example)}),
            encoding="utf-8",
        )
        try:
            os.replace(staging, model_dir)
        except OSError:  # another process finished the same export first
            if not (model_dir / "meta.json").is_file():
                raise
    except Exception as exc:
        raise BackendUnavailable(f"exporting the model to OpenVINO failed: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_against_pytorch(st_model: SentenceTransformer, encoder: TokenEncoder, model_dir: Path) -> None:
    """Refuse (and delete) an export whose vectors differ from sentence-transformers' own."""
    reference = st_model.encode(PROBE_TEXTS, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    cosine = float(np.min(np.sum(reference * encoder.encode(PROBE_TEXTS), axis=1)))
    if cosine < MIN_PROBE_COSINE:
        shutil.rmtree(model_dir, ignore_errors=True)
        raise BackendUnavailable(
            f"the OpenVINO export disagrees with PyTorch (cosine {cosine:.5f} < {MIN_PROBE_COSINE})"
        )
