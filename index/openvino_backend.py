"""Run a sentence-transformers model's transformer through OpenVINO on the CPU.

Same model, same weights, faster execution, in the precision the CPU runs fastest
(index/precision.py): bfloat16 where the CPU has bfloat16 instructions, int8 where it has
VNNI, float32 otherwise (speed per precision: docs/BENCHMARKS.md).

- Export once: the PyTorch module is converted (`openvino.convert_model`, about 5 s) and saved
  as OpenVINO IR in the cache folder under a key made of the model's files (weights, config,
  tokenizer) and the library versions; PyTorch's own vectors for `check_texts()` are saved
  beside it. Later processes only read the IR: they never import PyTorch or transformers
  (tokenising is `tokenizers`', index/encoding.py). A damaged entry is exported again.
- int8: the float32 IR is quantized once with NNCF's post-training quantization, calibrated on
  128 chunks of news articles shipped in index/calibration/ (training/make_calibration.py),
  and kept beside it (`int8/`); `INT8_FLOAT_LAYERS` stay in float32.
- Checked before first use, per precision: the model's vectors for `check_texts()` must agree
  with PyTorch's (cosine >= MIN_PROBE_COSINE for float32 and bfloat16, >= INT8_MIN_COSINE for
  int8), else the entry is deleted and `BackendUnavailable` says why. A passed check is
  recorded (`checked-<precision>.json`), so later processes skip it.
- Compiled models are cached too (OpenVINO's `CACHE_DIR`, `compiled/`): a later process loads
  the compiled blob instead of compiling the graph again.
- Only the transformer runs here (`OpenVINORunner`: token ids in, token states out);
  tokenisation and pooling are `index.encoding.TokenEncoder`'s, for models made of
  Transformer -> mean Pooling [-> Normalize] (`BackendUnavailable` names anything else).
- No telemetry: OpenVINO's Python package sends a usage event on import through the optional
  `openvino_telemetry` package (opt-out since 2024). `import_openvino` marks that package as
  absent in this process before OpenVINO is imported, so OpenVINO uses its built-in no-op stub.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from articleqa.index.encoding import (
    Layout,
    TokenEncoder,
    UnsupportedModelError,
    layout_from_folder,
    layout_of,
    load_tokenizer,
    tokenizer_of,
)
from articleqa.index.precision import choose_precision

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

# Bump when the export recipe changes, so old cache entries are not reused.
EXPORT_FORMAT = 3
# float32 and bfloat16 against PyTorch: bfloat16 measured >= 0.99995 on 300 news chunks.
MIN_PROBE_COSINE = 0.999
# int8 against PyTorch. Measured on 600 MultiHop-RAG news chunks that calibration did not see:
# min 0.9954, mean 0.9981; on the 35 check texts min 0.9971. 0.98 leaves room for other CPUs'
# int8 kernels while refusing a broken quantization (a wrong scale wrecks whole layers and
# cosines fall below 0.9); retrieval and answer metrics per precision: docs/EVALUATION.md.
INT8_MIN_COSINE = 0.98
PROBE_TEXTS = [
    "Who called the meeting a waste of time?",
    "Another senior European official was even more blunt in his assessment.",
    "The earthquake struck at 10:17 local time, 30 km south-west of the city, and was followed by several aftershocks.",
]
# Layers int8 leaves in float32: the first layer's feed-forward down-projection, whose inputs
# have the largest outliers. Chosen on MultiHop-RAG's fitting questions and articles (never on
# a reporting set): against float32, keeping it raised the mean cosine of 600 news chunks from
# 0.9963 to 0.9981 and the overlap of each question's top 10 chunks from 0.953 to 0.964, at
# the same speed; keeping all six layers' raised them to 0.9989 and 0.972 but cost 45% of
# int8's speed (docs/BENCHMARKS.md). Names are BERT's as exported; models without them lose nothing.
INT8_FLOAT_LAYERS = (r".*layer\.0\.output\.dense/.*",)
# OpenVINO's INFERENCE_PRECISION_HINT per precision. int8 keeps the layers NNCF leaves
# unquantized in float32, as on a CPU without bfloat16.
_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}

log = logging.getLogger(__name__)


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


@cache
def calibration_texts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(calibration, held-out) news chunks shipped in index/calibration/news.jsonl."""
    lines = resources.files("articleqa.index.calibration").joinpath("news.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in lines.splitlines() if line.strip()]
    calibration = tuple(r["text"] for r in rows if r["split"] == "calibration")
    held_out = tuple(r["text"] for r in rows if r["split"] == "held_out")
    return calibration, held_out


def check_texts() -> list[str]:
    """What a precision's vectors are checked on: the probe sentences and 32 held-out chunks."""
    return [*PROBE_TEXTS, *calibration_texts()[1]]


def _versions(*packages: str) -> list[str]:
    found = []
    for package in packages:
        try:
            found.append(f"{package}={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package}=none")
    return found


@dataclass(frozen=True)
class ModelSource:
    """What an export is made from: its cache key, layout and tokenizer, and how to load the
    PyTorch model when (only when) an export or its reference vectors must be made.

    Build with `from_folder` (a sentence-transformers folder: nothing heavy is loaded) or
    `from_model` (an already loaded model, e.g. one whose weights were changed in memory).
    """

    key: str
    layout: Layout
    tokenizer: Callable[[], Tokenizer]
    reference_model: Callable[[], SentenceTransformer]

    @classmethod
    def from_folder(cls, folder: Path, load: Callable[[], SentenceTransformer]) -> ModelSource:
        """Raises `UnsupportedModelError` if the folder is not a model `TokenEncoder` re-does."""
        folder = Path(folder)
        layout = layout_from_folder(folder)
        digest = hashlib.sha256()
        for part in (f"format={EXPORT_FORMAT}", *_versions("openvino", "torch", "transformers")):
            digest.update(part.encode() + b"\0")
        names = ["modules.json", "sentence_bert_config.json", "config.json", "tokenizer.json"]
        names += [n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()]
        for name in names:
            digest.update(name.encode() + b"\0")
            with open(folder / name, "rb") as handle:
                digest.update(hashlib.file_digest(handle, "sha256").digest())
        return cls(digest.hexdigest()[:24], layout, lambda: load_tokenizer(folder, layout), load)

    @classmethod
    def from_model(cls, st_model: SentenceTransformer) -> ModelSource:
        """Keyed by the loaded weights themselves. Raises `UnsupportedModelError`."""
        import torch
        import transformers

        layout = layout_of(st_model)
        auto = st_model[0].auto_model
        digest = hashlib.sha256()
        for part in (
            f"format={EXPORT_FORMAT}",
            *_versions("openvino"),
            f"torch={torch.__version__}",
            f"transformers={transformers.__version__}",
            type(auto).__name__,
            auto.config.to_json_string(use_diff=False),
        ):
            digest.update(part.encode() + b"\0")
        for name, tensor in sorted(auto.state_dict().items()):
            digest.update(name.encode() + b"\0")
            digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
        return cls(digest.hexdigest()[:24], layout, lambda: tokenizer_of(st_model), lambda: st_model)


class OpenVINORunner:
    """The model's transformer compiled for OpenVINO's CPU runtime: a `index.encoding.Runner`.

    Build with `OpenVINORunner.load`. Thread-safe: calls are serialised by a lock. One batch
    (`__call__`, e.g. a question) runs on the latency-compiled model, all cores on one
    request; many batches (`map`, indexing) run on a throughput-compiled copy, compiled on
    first use, with one request per core in parallel: 11% faster on 2 cores.

    Attributes:
        model_dir: The cache entry holding model.xml / model.bin / meta.json (for int8, its
            `int8/` folder).
        precision: `fp32`, `bf16` or `int8`.
        exported: True if this call exported (or quantized) the model, False if it was read
            from the cache.
        input_names: The inputs the exported graph takes.
        tokenizer: The model's tokenizer, configured for its layout.
        layout: The model's layout.
    """

    def __init__(
        self,
        core: Any,
        model: Any,
        compiled: Any,
        model_dir: Path,
        precision: str,
        exported: bool,
        config: dict,
        tokenizer: Tokenizer,
        layout: Layout,
    ):
        self._core = core
        self._model = model
        self._config = config
        self._request = compiled.create_infer_request()
        self._queue: Any = None
        self._lock = threading.Lock()
        self.input_names = {p.get_any_name() for p in compiled.inputs}
        self.model_dir = model_dir
        self.precision = precision
        self.exported = exported
        self.tokenizer = tokenizer
        self.layout = layout

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        with self._lock:
            # Copy out: the request reuses its output buffer on the next call.
            return np.array(self._request.infer(inputs)[0], copy=True)

    def map(self, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        """Token states for each batch, running batches in parallel (one request per core)."""
        openvino = import_openvino()
        with self._lock:
            if self._queue is None:
                compiled = self._core.compile_model(
                    self._model, "CPU", {**self._config, "PERFORMANCE_HINT": "THROUGHPUT"}
                )
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

    def encoder(self) -> TokenEncoder:
        """A `TokenEncoder` running this model with its own tokenizer and layout."""
        return TokenEncoder(self.tokenizer, self, self.layout, self.input_names)

    @classmethod
    def load(
        cls, source: ModelSource | SentenceTransformer, cache_dir: Path, precision: str = "auto"
    ) -> OpenVINORunner:
        """The cached export of `source` in `precision` (`auto`: index/precision.py), exported,
        quantized and checked first where this cache has not done so yet.

        Raises:
            BackendUnavailable: OpenVINO (or NNCF, for int8) is missing, the model's pipeline is
                unsupported, the export failed, or its vectors disagree with PyTorch's.
            ValueError: `precision` is not a precision this CPU runs (index/precision.py).
        """
        openvino = import_openvino()
        chosen = choose_precision(precision)
        if not isinstance(source, ModelSource):
            try:
                source = ModelSource.from_model(source)
            except UnsupportedModelError as exc:
                raise BackendUnavailable(str(exc)) from exc
        entry = Path(cache_dir).expanduser() / "openvino" / source.key
        core = openvino.Core()
        exported = False
        if not (entry / "meta.json").is_file() or not (entry / "reference.npy").is_file():
            shutil.rmtree(entry, ignore_errors=True)  # missing, or damaged: made again
            _export(source, entry, openvino)
            exported = True
        model_dir = entry / "int8" if chosen == "int8" else entry
        config = {"INFERENCE_PRECISION_HINT": _HINTS[chosen], "CACHE_DIR": str(entry / "compiled")}

        def compile_entry() -> tuple[Any, Any]:
            nonlocal exported
            if chosen == "int8" and not (model_dir / "meta.json").is_file():
                _quantize(source, entry, model_dir, openvino)
                exported = True
            model = core.read_model(model_dir / "model.xml")
            return model, core.compile_model(model, "CPU", {**config, "PERFORMANCE_HINT": "LATENCY"})

        try:
            model, compiled = compile_entry()
        except BackendUnavailable:
            raise
        except Exception as first:  # noqa: BLE001 - a damaged cache entry: export again, once
            if exported:
                raise BackendUnavailable(f"OpenVINO cannot compile the exported model: {first}") from first
            shutil.rmtree(entry, ignore_errors=True)
            _export(source, entry, openvino)
            exported = True
            try:
                model, compiled = compile_entry()
            except BackendUnavailable:
                raise
            except Exception as exc:  # noqa: BLE001
                raise BackendUnavailable(f"OpenVINO cannot compile the exported model: {exc}") from exc
        runner = cls(core, model, compiled, model_dir, chosen, exported, config, source.tokenizer(), source.layout)
        _check(runner, entry, model_dir)
        return runner


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' warnings off while the converter walks the model: its attributes include
    `loss_function`, whose getter warns about a loss that an encoder never uses ("`loss_type=None`
    was set in the config but it is unrecognized"), which users read as a fault."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)


def _export(source: ModelSource, entry: Path, openvino: Any) -> None:
    """Convert the transformer to OpenVINO IR in a temporary folder, then move it into place,
    with PyTorch's own vectors for `check_texts()` beside it (reference.npy)."""
    import warnings

    import torch

    st_model = source.reference_model()
    auto = st_model[0].auto_model.eval()
    example = dict(
        st_model[0].tokenizer(
            PROBE_TEXTS[:2], padding=True, truncation=True, max_length=source.layout.max_seq_length, return_tensors="pt"
        )
    )

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model: torch.nn.Module):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):  # noqa: ANN001
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state

    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=entry.parent))
    try:
        with warnings.catch_warnings(), torch.no_grad(), _quiet_transformers():
            warnings.simplefilter("ignore")  # tracer warnings about constant shapes
            converted = openvino.convert_model(LastHiddenState(auto), example_input=example)
        openvino.save_model(converted, staging / "model.xml")
        reference = st_model.encode(
            check_texts(), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        np.save(staging / "reference.npy", reference.astype(np.float32))
        (staging / "meta.json").write_text(
            json.dumps({"format": EXPORT_FORMAT, "openvino": openvino.__version__, "inputs": sorted(example)}),
            encoding="utf-8",
        )
        _move_into_place(staging, entry)
    except Exception as exc:
        raise BackendUnavailable(f"exporting the model to OpenVINO failed: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging: Path, target: Path) -> None:
    try:
        os.replace(staging, target)
    except OSError:  # another process finished the same work first
        if not (target / "meta.json").is_file():
            raise


def _quantize(source: ModelSource, entry: Path, target: Path, openvino: Any) -> None:
    """Quantize the float32 IR to int8 with NNCF, calibrated on the shipped news chunks."""
    try:
        import nncf
    except ImportError as exc:
        raise BackendUnavailable(f"int8 needs the 'nncf' package, which is not installed ({exc})") from exc
    from nncf.common.logging import nncf_logger

    # NNCF logs to its own stdout handler; its records go to this process's logging instead
    # (stderr), and only warnings: its INFO lines list ignored nodes and statistics.
    for handler in list(nncf_logger.handlers):
        nncf_logger.removeHandler(handler)
    nncf_logger.propagate = True
    nncf_logger.setLevel(logging.WARNING)
    calibration = calibration_texts()[0]
    log.warning("quantizing the embedding model to int8 once, on %d news chunks (about 30 s)", len(calibration))
    tokenizer = source.tokenizer()
    model = openvino.Core().read_model(entry / "model.xml")
    names = {p.get_any_name() for p in model.inputs}
    encoder = TokenEncoder(tokenizer, lambda inputs: inputs, source.layout, names)
    items = [encoder._tokenize([text], offsets=False)[0] for text in calibration]
    staging = Path(tempfile.mkdtemp(prefix=".int8-", dir=entry))
    try:
        # NNCF draws its progress bars on stdout; stdout belongs to the command's output
        # (`articleqa ask --json`), so they go to stderr with the other progress.
        with contextlib.redirect_stdout(sys.stderr):
            quantized = nncf.quantize(
                model,
                nncf.Dataset(items),
                model_type=nncf.ModelType.TRANSFORMER,
                subset_size=len(items),
                ignored_scope=nncf.IgnoredScope(patterns=list(INT8_FLOAT_LAYERS), validate=False),
            )
        openvino.save_model(quantized, staging / "model.xml")
        (staging / "meta.json").write_text(
            json.dumps(
                {
                    "format": EXPORT_FORMAT,
                    "nncf": nncf.__version__,
                    "calibration_chunks": len(items),
                    "inputs": sorted(names),
                }
            ),
            encoding="utf-8",
        )
        _move_into_place(staging, target)
    except BackendUnavailable:
        raise
    except Exception as exc:
        raise BackendUnavailable(f"quantizing the model to int8 failed: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check(runner: OpenVINORunner, entry: Path, model_dir: Path) -> None:
    """Refuse (and delete) a model whose vectors in this precision differ from PyTorch's.

    Runs once per cache entry and precision; a pass is recorded in `checked-<precision>.json`.
    """
    record = model_dir / f"checked-{runner.precision}.json"
    if record.is_file():
        return
    reference = np.load(entry / "reference.npy")
    cosines = np.sum(reference * runner.encoder().encode(check_texts()), axis=1)
    floor = INT8_MIN_COSINE if runner.precision == "int8" else MIN_PROBE_COSINE
    if float(cosines.min()) < floor:
        shutil.rmtree(model_dir if runner.precision == "int8" else entry, ignore_errors=True)
        raise BackendUnavailable(
            f"the OpenVINO model in {runner.precision} disagrees with PyTorch "
            f"(cosine {float(cosines.min()):.5f} < {floor})"
        )
    stats = {"min": float(cosines.min()), "mean": float(cosines.mean()), "texts": len(cosines)}
    tmp = record.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"precision": runner.precision, "cosine": stats}), encoding="utf-8")
    os.replace(tmp, record)
