"""The OpenVINO and PyTorch runs of the bundled model: same vectors, export cached, safe fallback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from articleqa.index import openvino_backend
from articleqa.index.embeddings import SentenceTransformerEmbeddings
from articleqa.index.encoding import layout_from_folder, layout_of, load_tokenizer
from articleqa.index.openvino_backend import INT8_MIN_COSINE, BackendUnavailable, ModelSource, OpenVINORunner
from articleqa.index.precision import choose_precision, float_precision
from tests.conftest import CORPUS, ROOT, SEED, WASTE_SENTENCE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def torch_model():
    """The bundled model run by PyTorch (plain sentence-transformers): the reference."""
    model = SentenceTransformerEmbeddings(backend="torch")
    model.encode(["warm up"])
    return model


def _texts() -> list[str]:
    """Real inputs of every length: a question, sentences, whole chunks, one over 256 tokens."""
    bodies = [json.loads(line)["body"] for line in CORPUS.read_text(encoding="utf-8").splitlines()[:6]]
    return [
        "Who called the meeting a waste of time?",
        WASTE_SENTENCE,
        "",
        *[body[:800] for body in bodies],
        bodies[0][:3000],  # truncated at the model's max_seq_length, as sentence-transformers does
        SEED.read_text(encoding="utf-8")[:1500],
    ]


def _check_vectors(model: SentenceTransformerEmbeddings, torch_model, floor: float) -> None:
    texts = _texts()
    ours = model.encode(texts)
    reference = torch_model.encode(texts)
    assert ours.shape == reference.shape == (len(texts), 384)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    # The empty text (only [CLS] and [SEP]) is left out of int8's floor: nothing real is empty.
    real = [i for i, text in enumerate(texts) if text or floor > INT8_MIN_COSINE]
    cosines = np.sum(ours * reference, axis=1)
    assert cosines[real].min() >= floor, cosines
    # Order is the caller's, not the length-sorted batching order.
    assert np.argmax(ours @ reference[1]) == 1


def test_openvino_in_float_gives_the_same_vectors_as_pytorch(torch_model, tmp_path_factory):
    """fp32, or bf16 where the CPU has it: PyTorch's vectors to 4 decimals, on every machine."""
    model = SentenceTransformerEmbeddings(cache_dir=tmp_path_factory.mktemp("float"), precision=float_precision())
    assert model.backend == "openvino" and model.precision == float_precision(), model.backend_note
    _check_vectors(model, torch_model, 0.9999)


def test_the_precision_auto_chose_keeps_its_floor(embeddings, torch_model):
    """The session's model as the product runs it here (index/precision.py chose)."""
    assert embeddings.backend == "openvino", embeddings.backend_note
    assert embeddings.precision == choose_precision("auto")
    _check_vectors(embeddings, torch_model, INT8_MIN_COSINE if embeddings.precision == "int8" else 0.9999)


def _encode(runner: OpenVINORunner, texts: list[str]) -> np.ndarray:
    return runner.encoder().encode(texts)


def test_openvino_batches_do_not_change_vectors(embeddings):
    texts = _texts()
    encoder = embeddings._token_encoder
    one_batch = encoder.encode(texts, batch_size=64)
    small_batches = encoder.encode(texts, batch_size=2)
    assert np.sum(one_batch * small_batches, axis=1).min() >= 0.99999


def test_export_is_made_once_then_read_from_the_cache(torch_model, tmp_path: Path):
    first = OpenVINORunner.load(torch_model.model, tmp_path, "fp32")
    assert first.exported and first.precision == "fp32"
    made = {p.name for p in first.model_dir.iterdir()}
    assert {"model.xml", "model.bin", "meta.json", "reference.npy", "checked-fp32.json", "compiled"} == made
    assert first.model_dir.parent == tmp_path / "openvino"
    assert list((first.model_dir / "compiled").iterdir())  # OpenVINO's compiled-model cache
    stamp = (first.model_dir / "model.bin").stat().st_mtime_ns
    second = OpenVINORunner.load(torch_model.model, tmp_path, "fp32")
    assert not second.exported
    assert second.model_dir == first.model_dir
    assert (second.model_dir / "model.bin").stat().st_mtime_ns == stamp
    np.testing.assert_allclose(_encode(second, ["a test"]), _encode(first, ["a test"]), atol=1e-6)


def test_a_model_folder_is_keyed_and_read_without_loading_it(torch_model, tmp_path: Path):
    """The bundled folder's layout and tokenizer, read from its files, are the loaded model's."""
    from articleqa.index.embeddings import DEFAULT_MODEL, resolve_model_path

    folder = Path(resolve_model_path(DEFAULT_MODEL))
    assert layout_from_folder(folder) == layout_of(torch_model.model)
    tokenizer = load_tokenizer(folder, layout_from_folder(folder))
    texts = _texts()
    ours = tokenizer.encode_batch(texts)
    theirs = torch_model.model[0].tokenizer(
        texts, padding=True, truncation=True, max_length=256, return_offsets_mapping=True
    )
    assert [e.ids for e in ours] == theirs["input_ids"]
    assert [e.attention_mask for e in ours] == theirs["attention_mask"]
    assert [[tuple(o) for o in e.offsets] for e in ours] == [
        [tuple(o) for o in row] for row in theirs["offset_mapping"]
    ]
    loaded = []
    source = ModelSource.from_folder(folder, lambda: loaded.append(1) or torch_model.model)
    assert source.key == ModelSource.from_folder(folder, lambda: torch_model.model).key
    runner = OpenVINORunner.load(source, tmp_path, "fp32")
    assert loaded == [1]  # the export needed PyTorch once
    again = OpenVINORunner.load(ModelSource.from_folder(folder, lambda: loaded.append(2)), tmp_path, "fp32")
    assert loaded == [1] and not again.exported  # the cached export did not
    assert float(_encode(runner, [WASTE_SENTENCE])[0] @ torch_model.encode([WASTE_SENTENCE])[0]) >= 0.9999


def test_a_damaged_cache_entry_is_exported_again(torch_model, tmp_path: Path):
    entry = OpenVINORunner.load(torch_model.model, tmp_path, "fp32").model_dir
    (entry / "model.xml").write_text("<not a model", encoding="utf-8")
    again = OpenVINORunner.load(torch_model.model, tmp_path, "fp32")
    assert again.exported
    reference = torch_model.encode([WASTE_SENTENCE])
    assert float(_encode(again, [WASTE_SENTENCE])[0] @ reference[0]) >= 0.9999


def test_an_entry_without_its_reference_vectors_is_exported_again(torch_model, tmp_path: Path):
    entry = OpenVINORunner.load(torch_model.model, tmp_path, "fp32").model_dir
    (entry / "reference.npy").unlink()
    again = OpenVINORunner.load(torch_model.model, tmp_path, "fp32")
    assert again.exported and (entry / "reference.npy").is_file()


def test_an_export_that_disagrees_with_pytorch_is_refused(torch_model, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(openvino_backend, "MIN_PROBE_COSINE", 1.5)  # no export can pass
    with pytest.raises(BackendUnavailable, match="disagrees with PyTorch"):
        OpenVINORunner.load(torch_model.model, tmp_path, "fp32")
    assert list((tmp_path / "openvino").iterdir()) == []  # nothing left to be trusted later


@pytest.fixture(scope="module")
def int8_runner(torch_model, tmp_path_factory) -> OpenVINORunner:
    """The bundled model quantized to int8 (NNCF, about 20 s on 2 cores), in a cache of its own."""
    runner = OpenVINORunner.load(torch_model.model, tmp_path_factory.mktemp("int8-cache"), "int8")
    assert runner.exported and runner.precision == "int8"
    return runner


def test_int8_is_quantized_once_checked_and_close_to_pytorch(int8_runner, torch_model):
    assert int8_runner.model_dir.name == "int8"
    check = json.loads((int8_runner.model_dir / "checked-int8.json").read_text(encoding="utf-8"))
    assert check["cosine"]["min"] >= INT8_MIN_COSINE and check["cosine"]["texts"] == 35
    # Quantized for real: the graph has int8 FakeQuantize nodes the float32 export lacks.
    xml = (int8_runner.model_dir / "model.xml").read_text(encoding="utf-8")
    assert "FakeQuantize" in xml and "FakeQuantize" not in (int8_runner.model_dir.parent / "model.xml").read_text()
    # The empty text (only [CLS] and [SEP], 0.93) is left out: nothing real is empty, and a
    # one-word question still gives 0.996.
    texts = [text for text in _texts() if text]
    cosines = np.sum(_encode(int8_runner, texts) * torch_model.encode(texts), axis=1)
    assert cosines.min() >= INT8_MIN_COSINE, cosines
    assert cosines.min() < 0.99999  # not the float32 model under another name
    again = OpenVINORunner.load(torch_model.model, int8_runner.model_dir.parent.parent.parent, "int8")
    assert not again.exported and again.model_dir == int8_runner.model_dir


def test_a_broken_int8_model_is_refused_and_removed(torch_model, int8_runner, monkeypatch):
    cache = int8_runner.model_dir.parent.parent.parent
    (int8_runner.model_dir / "checked-int8.json").unlink()  # as if never checked here
    monkeypatch.setattr(openvino_backend, "INT8_MIN_COSINE", 1.5)
    with pytest.raises(BackendUnavailable, match="in int8 disagrees with PyTorch"):
        OpenVINORunner.load(torch_model.model, cache, "int8")
    assert not int8_runner.model_dir.exists()
    assert (int8_runner.model_dir.parent / "model.xml").is_file()  # the float32 export stays


def test_a_cached_export_runs_without_pytorch(tmp_path: Path):
    """Once exported, a new process tokenises with `tokenizers` and runs OpenVINO: neither
    PyTorch nor transformers nor sentence-transformers is imported."""
    script = """
import json, sys
from articleqa.index.embeddings import SentenceTransformerEmbeddings
model = SentenceTransformerEmbeddings(backend="openvino", cache_dir=sys.argv[1], precision="fp32")
vector = model.encode(["Who called the meeting a waste of time?"])[0]
heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)
print(json.dumps({"note": model.backend_note, "heavy": heavy, "vector": vector[:4].tolist(), "dim": model.dimension}))
"""
    runs = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=300
        )
        assert out.returncode == 0, out.stderr[-2000:]
        # transformers' warning about a training loss an encoder never uses, once printed on
        # every first run, reads as a fault to users.
        assert "loss_type" not in out.stderr, out.stderr[-2000:]
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert "exported to" in first["note"] and first["heavy"]  # the export needs PyTorch
    assert "cached in" in second["note"] and second["heavy"] == [], second
    assert second["dim"] == 384
    np.testing.assert_allclose(second["vector"], first["vector"], atol=1e-5)


def test_unsupported_pipelines_are_named(torch_model):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    cls_pooled = SentenceTransformer(modules=[torch_model.model[0], Pooling(384, pooling_mode="cls")], device="cpu")
    with pytest.raises(BackendUnavailable, match="pooling mode 'cls'"):
        OpenVINORunner.load(cls_pooled, Path("unused"))


def test_auto_falls_back_to_pytorch_and_says_why(monkeypatch, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if the package were not installed
    auto = SentenceTransformerEmbeddings(backend="auto", cache_dir=tmp_path)
    vector = auto.encode([WASTE_SENTENCE])
    assert auto.backend == "torch"
    assert "OpenVINO unavailable" in auto.backend_note and "not installed" in auto.backend_note
    assert vector.shape == (1, 384)
    strict = SentenceTransformerEmbeddings(backend="openvino", cache_dir=tmp_path)
    with pytest.raises(BackendUnavailable, match="'openvino' package is not installed"):
        strict.encode(["x"])


def test_torch_backend_never_touches_openvino(tmp_path: Path):
    model = SentenceTransformerEmbeddings(backend="torch", cache_dir=tmp_path)
    assert model.backend == "torch"
    assert not (tmp_path / "openvino").exists()


def test_a_bad_backend_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="auto, openvino, torch.*'fast'"):
        SentenceTransformerEmbeddings(backend="fast")  # type: ignore[arg-type]


def test_cli_rejects_a_bad_backend_setting(tmp_path: Path):
    from typer.testing import CliRunner

    from articleqa.ui.cli import app

    result = CliRunner().invoke(
        app, ["index", str(SEED), "--index-dir", str(tmp_path / "ix")], env={"ARTICLEQA_EMBEDDING_BACKEND": "fast"}
    )
    assert result.exit_code == 2
    assert "embedding_backend" in result.output and "'auto', 'openvino' or 'torch'" in result.output
    assert not (tmp_path / "ix").exists()


def test_openvino_telemetry_is_never_loaded(tmp_path: Path):
    """OpenVINO sends a usage event on import when `openvino_telemetry` is importable; we
    keep it out. HOME points at an empty folder so a consent file would show up there."""
    script = """
import sys
from articleqa.index.embeddings import SentenceTransformerEmbeddings
from articleqa.index.encoding import TokenEncoder, layout_of
model = SentenceTransformerEmbeddings(backend="openvino", cache_dir=sys.argv[1])
model.encode(["hello"])
import openvino
print(model.backend, "openvino_telemetry" in sys.modules, sys.modules.get("openvino_telemetry"),
      any(name.startswith("openvino_telemetry.") for name in sys.modules))
"""
    home = tmp_path / "home"
    home.mkdir()
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "HOME": str(home)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["openvino", "True", "None", "False"]
    assert list(home.iterdir()) == []


def test_batches_are_padded_to_a_multiple_of_16_tokens_and_vectors_do_not_change(embeddings):
    """Fewer distinct input shapes keep OpenVINO's per-shape kernel cache small (index/encoding.py,
    PAD_MULTIPLE); the padding is masked, so a text's vector is the same in any batch."""
    from articleqa.index.encoding import PAD_MULTIPLE, TokenEncoder

    encoder = embeddings._token_encoder
    widths: list[int] = []

    def recording(inputs):
        widths.append(inputs["input_ids"].shape[1])
        return encoder.runner(inputs)

    texts = _texts()
    padded = TokenEncoder(encoder.tokenizer, recording, encoder.layout, encoder.input_names).encode(texts, 3)
    assert widths and all(w % PAD_MULTIPLE == 0 for w in widths), widths
    assert max(widths) == encoder.layout.max_seq_length  # the long text: truncated, never padded past the window
    alone = np.vstack([encoder.encode([t]) for t in texts])
    assert np.sum(padded * alone, axis=1).min() >= 0.9999
