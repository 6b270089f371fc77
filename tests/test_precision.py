"""The embedding precision chosen from the CPU's flags, and the calibration data int8 uses."""

from __future__ import annotations

import json

import pytest

from articleqa.index.openvino_backend import calibration_texts, check_texts
from articleqa.index.precision import CpuInfo, choose_precision, cpu_info, parse_cpuinfo
from tests.conftest import ROOT

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni
processor\t: 1
model name\t: ignored second core
flags\t\t: fpu
"""


def _cpu(*flags: str) -> CpuInfo:
    return CpuInfo("test CPU", frozenset(flags))


def test_cpuinfo_gives_the_first_cores_model_and_flags():
    cpu = parse_cpuinfo(CPUINFO)
    assert cpu.model == "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"
    assert {"avx2", "avx512_vnni"} <= cpu.flags and "avx512_bf16" not in cpu.flags
    assert cpu.has_vnni and not cpu.has_bf16
    assert cpu.summary() == "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz (avx2 avx512f avx512_vnni)"


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("avx2", "avx512_vnni", "avx512_bf16"), "bf16"),
        (("avx2", "amx_bf16", "amx_int8"), "bf16"),
        (("avx2", "avx512_vnni"), "int8"),
        (("avx2", "avx_vnni"), "int8"),
        (("avx2",), "fp32"),
        ((), "fp32"),
    ],
)
def test_auto_picks_the_fastest_precision_the_cpu_has(flags, expected):
    assert choose_precision("auto", _cpu(*flags)) == expected


def test_a_forced_precision_is_kept():
    assert choose_precision("fp32", _cpu("avx512_bf16")) == "fp32"
    assert choose_precision("int8", _cpu("avx2")) == "int8"  # runs, only slower without VNNI


def test_bf16_on_a_cpu_without_it_is_refused_with_the_flags_it_needs():
    with pytest.raises(ValueError, match=r"'bf16' needs a CPU with amx_bf16 or avx512_bf16.*test CPU \(avx2\)"):
        choose_precision("bf16", _cpu("avx2"))


def test_an_unknown_precision_lists_the_valid_ones():
    with pytest.raises(ValueError, match="auto, fp32, bf16, int8, not 'fp16'"):
        choose_precision("fp16", _cpu())


def test_this_machine_is_read():
    cpu = cpu_info()
    assert cpu.model and cpu.flags  # Linux: /proc/cpuinfo
    assert choose_precision("auto", cpu) in {"fp32", "bf16", "int8"}


def test_the_calibration_data_is_news_text_split_in_two():
    rows = [json.loads(line) for line in (ROOT / "index" / "calibration" / "news.jsonl").read_text().splitlines()]
    calibration, held_out = calibration_texts()
    assert (len(calibration), len(held_out)) == (128, 32)
    assert not set(calibration) & set(held_out)  # the check encodes texts calibration never saw
    assert all(r["url"].startswith("https://en.wikinews.org/") for r in rows)  # credited in LICENSE-NOTE.txt
    assert (ROOT / "index" / "calibration" / "LICENSE-NOTE.txt").is_file()
    assert check_texts()[3:] == list(held_out)


@pytest.mark.slow
def test_the_seed_question_is_answered_the_same_in_int8(tmp_path):
    """The int8 path end to end, as on a CPU without bfloat16: the index is embedded and the
    question encoded by the quantized model, and the answer quotes and cites the seed article."""
    from articleqa.index import index_paths, open_index
    from articleqa.qa import ArticleQA
    from tests.conftest import SEED, SEED_ID, WASTE_SENTENCE, corpus_rows, write_jsonl

    index_dir = tmp_path / "index"
    store = open_index(index_dir, embedding_precision="int8")
    report = index_paths(store, [SEED, write_jsonl(tmp_path / "news.jsonl", corpus_rows(40))])
    assert store.embeddings.precision == "int8" and "int8" in store.embeddings.backend_note
    store.close()
    assert len(report.added) == 41 and not report.failed
    with ArticleQA.open(index_dir, embedding_precision="int8") as qa:
        answer = qa.ask("Who called the meeting a waste of time?")
    assert answer.grounded
    cited = [c for c in answer.citations if c.article_id == SEED_ID]
    assert cited and cited[0].quote == WASTE_SENTENCE and cited[0].source == "RT"


def test_a_bad_precision_setting_is_refused_by_the_cli(tmp_path):
    from typer.testing import CliRunner

    from articleqa.ui.cli import app

    result = CliRunner().invoke(
        app,
        ["index", str(tmp_path), "--index-dir", str(tmp_path / "ix")],
        env={"ARTICLEQA_EMBEDDING_PRECISION": "fp16"},
    )
    assert result.exit_code == 2
    assert "embedding_precision" in result.output and "'auto', 'fp32', 'bf16' or 'int8'" in result.output
    assert not (tmp_path / "ix").exists()


@pytest.mark.slow
def test_quantizing_writes_nothing_to_stdout(tmp_path):
    """The first int8 run on a machine quantizes (NNCF draws progress bars and logs); stdout
    belongs to the command's output (`articleqa ask --json`), so all of that goes to stderr."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from articleqa.index.embeddings import SentenceTransformerEmbeddings\n"
        "model = SentenceTransformerEmbeddings(backend='openvino', precision='int8', cache_dir=sys.argv[1])\n"
        "model.encode(['Who called the meeting a waste of time?'])\n"
        "print(model.precision)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == "int8\n"
    assert "quantizing the embedding model to int8" in out.stderr
