"""Cold start (issue 15): `articleqa --help`, a command's --help and an argument error import no
model library; each command imports what it needs when it runs.

Every case runs the real entry point (`articleqa.ui.cli:main`) in a fresh interpreter, which then
writes the names of the heavy modules it has loaded to a file. How long it takes is measured by
`make bench`, not here. That a command still works end to end is covered by
tests/test_cli_qa.py and tests/test_cli_index.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# Model, vector store, web and LangChain libraries: none is needed to show help or reject an argument.
HEAVY = (
    "torch",
    "transformers",
    "sentence_transformers",
    "openvino",
    "chromadb",
    "gradio",
    "langchain_core",
    "langchain_core.retrievers",
    "langchain_core.vectorstores.base",
    "langchain_chroma",
    "langchain_classic",
    "sqlalchemy",
    "sklearn",
    "trafilatura",
    "httpx",
    "numpy",
)

# Runs the entry point with argv[2:], then writes the heavy modules loaded to argv[1].
_PROBE = """
import gc, json, sys
report, args = sys.argv[1], sys.argv[2:]
sys.argv = ["articleqa", *args]
heavy = json.loads(sys.stdin.read())
from articleqa.ui.cli import main
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
with open(report, "w", encoding="utf-8") as f:
    json.dump({"code": code, "loaded": [m for m in heavy if m in sys.modules], "frozen": gc.get_freeze_count()}, f)
"""


@dataclass
class Run:
    code: int | None
    loaded: list[str]
    stdout: str
    stderr: str
    frozen: int  # objects moved to the permanent generation (gc.freeze) when main() returned


def run_cli(tmp_path: Path, *args: str) -> Run:
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(report), *args],
        input=json.dumps(HEAVY),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},  # one line per message, no escapes
    )
    assert report.exists(), result.stderr  # the probe itself failed
    data = json.loads(report.read_text(encoding="utf-8"))
    return Run(data["code"], data["loaded"], result.stdout, result.stderr, data["frozen"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ("Usage: articleqa", "index", "ask", "serve")),  # no arguments: the help
        (("--help",), ("Usage: articleqa", "index", "ask", "chat", "eval", "serve")),
        (("ask", "--help"), ("Usage: articleqa ask", "--k", "--source", "--llm", "ARTICLEQA_K")),
        (("index", "--help"), ("Usage: articleqa index", "--prune", "--rebuild", "--exclude")),
        (("eval", "--help"), ("Usage: articleqa eval", "--mode", "hybrid, dense, lexical")),
    ],
    ids=["bare", "help", "ask-help", "index-help", "eval-help"],
)
def test_help_imports_no_model_library(tmp_path, args, expected):
    run = run_cli(tmp_path, *args)
    assert run.loaded == []
    assert run.code in (0, 2)  # click exits with 2 when a group is called with no command
    for text in expected:
        assert text in run.stdout + run.stderr


@pytest.mark.parametrize("args", [("--help",), ("ask",)], ids=["success", "argument-error"])
def test_main_freezes_the_heap_however_the_command_ends(tmp_path, args):
    """So the interpreter's teardown skips the final garbage collections (about 0.9 s of a cold
    `articleqa ask` on 2 AVX2-only cores); without it the count is 0."""
    run = run_cli(tmp_path, *args)
    assert run.code in (0, 2)
    assert run.frozen > 0


def test_help_shows_the_declared_defaults(tmp_path):
    """The --mode choices and default come from `qa.defaults`, not from copies."""
    from articleqa.qa.defaults import DEFAULT_RETRIEVAL_MODE, RETRIEVAL_MODES

    run = run_cli(tmp_path, "eval", "--help")
    assert run.code == 0 and run.loaded == []
    text = " ".join(run.stdout.split())
    assert f"Retrieval: {', '.join(RETRIEVAL_MODES)}. [default: {DEFAULT_RETRIEVAL_MODE}]" in text


def test_help_shows_the_environment_variables(tmp_path):
    """Typer renders help as rich markup, where an unescaped "[env: ...]" is read as a style
    and dropped ("Passages to retrieve ."): each option's variable and default must show."""
    from articleqa.qa.defaults import DEFAULT_K, DEFAULT_LLM_TIMEOUT

    run = run_cli(tmp_path, "ask", "--help")
    assert run.code == 0 and run.loaded == []
    text = " ".join(run.stdout.split())
    for hint in (
        f"Passages to retrieve [env: ARTICLEQA_K; default {DEFAULT_K}].",
        "Index folder [env: ARTICLEQA_INDEX_DIR; default ",
        "[env: ARTICLEQA_CHROMA_URL].",
        "[env: ARTICLEQA_LLM].",
        "[env: ARTICLEQA_LLM_BASE_URL].",
        f"[env: ARTICLEQA_LLM_TIMEOUT; default {DEFAULT_LLM_TIMEOUT:g}].",
    ):
        assert hint in text, hint
    assert not re.search(r" \.(?!\w)", text)  # no hint dropped, leaving its space before the full stop


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("ask",), "Missing argument 'question'"),
        (("ask", "a question", "--k", "notanumber"), "'--k'"),
        (("index",), "Missing argument 'paths"),
        (("ask", "a question", "--no-such-flag"), "--no-such-flag"),
        (("no-such-command",), "no-such-command"),
    ],
    ids=["ask-no-question", "ask-bad-k", "index-no-paths", "unknown-option", "unknown-command"],
)
def test_argument_error_imports_no_model_library(tmp_path, args, named):
    run = run_cli(tmp_path, *args)
    assert run.code == 2
    assert named in run.stderr
    assert "Traceback" not in run.stderr
    assert run.loaded == []


def test_a_bad_retrieval_mode_is_rejected_before_loading_anything(tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text("", encoding="utf-8")
    run = run_cli(tmp_path, "eval", str(questions), "--mode", "sideways")
    assert run.code == 2
    assert "--mode 'sideways' is not one of hybrid, dense, lexical" in run.stderr
    assert run.loaded == []


@pytest.mark.parametrize(
    "module", ["articleqa.index", "articleqa.qa", "articleqa.index.defaults", "articleqa.qa.defaults"]
)
def test_the_packages_import_their_names_on_first_use(module):
    """Importing a package (or its constants) loads none of the heavy libraries; a name of its
    `__all__` is imported when it is first used."""
    code = (
        f"import json, sys, importlib; importlib.import_module({module!r}); "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize("package", ["articleqa.index", "articleqa.qa"])
def test_every_public_name_has_a_source_module(package):
    import importlib

    mod = importlib.import_module(package)
    assert set(mod._SOURCES) == set(mod.__all__)
    assert set(mod.__all__) <= set(dir(mod))
    with pytest.raises(AttributeError, match="no_such_name"):
        mod.no_such_name  # noqa: B018


def test_lazy_names_are_the_defining_modules_objects():
    from articleqa.index import DEFAULT_CHUNK_SIZE, DEFAULT_INDEX_DIR, open_index
    from articleqa.index.chunking import DEFAULT_CHUNK_SIZE as chunking_size
    from articleqa.index.folder import DEFAULT_INDEX_DIR as folder_dir
    from articleqa.qa import ArticleQA
    from articleqa.qa.api import ArticleQA as api_qa
    from articleqa.qa.defaults import DEFAULT_K, RETRIEVAL_MODES
    from articleqa.qa.retrieval import DEFAULT_K as retrieval_k
    from articleqa.qa.retrieval import RETRIEVAL_MODES as retrieval_modes

    assert ArticleQA is api_qa
    assert open_index.__module__ == "articleqa.index.opening"
    assert (DEFAULT_CHUNK_SIZE, DEFAULT_INDEX_DIR) == (chunking_size, folder_dir)
    assert (DEFAULT_K, RETRIEVAL_MODES) == (retrieval_k, retrieval_modes)


@pytest.mark.slow
def test_ask_with_a_cached_model_imports_no_pytorch(tmp_path, example_index, embeddings):
    """A one-off `articleqa ask` after the model's export is cached (the session's `embeddings`
    made it): the answer comes from OpenVINO with `tokenizers`; PyTorch, transformers,
    sentence-transformers, LangChain's indexing API and its vector-store and retriever classes,
    langchain-chroma and SQLAlchemy (only writes need them) stay unloaded."""
    assert embeddings.backend == "openvino", embeddings.backend_note
    run = run_cli(tmp_path, "ask", "Who called the meeting a waste of time?", "--index-dir", str(example_index))
    assert run.code in (0, None), run.stderr[-2000:]
    assert "waste of time" in run.stdout and "macron-white-house-visit" in run.stdout
    assert {"openvino", "chromadb"} <= set(run.loaded)  # it did load what answering needs
    assert not {"torch", "transformers", "sentence_transformers", "sklearn", "gradio"} & set(run.loaded), run.loaded
    writes_only = {
        "langchain_classic",
        "langchain_chroma",
        "langchain_core.vectorstores.base",
        "langchain_core.retrievers",
        "sqlalchemy",
    }
    assert not writes_only & set(run.loaded), run.loaded
