"""`articleqa index` end to end: summary, exit codes, JSON, errors, URLs, a real Chroma server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from articleqa.index import open_index
from articleqa.ui.cli import app
from tests.conftest import SEED, SEED_ID, corpus_rows, write_jsonl

pytestmark = pytest.mark.slow
runner = CliRunner()

PAGE = """<!doctype html><html><head><title>Bridge reopens | City Paper</title>
<link rel="canonical" href="http://127.0.0.1/news/bridge-reopens">
<meta name="author" content="Ada Reporter">
<meta property="article:published_time" content="2024-05-02T09:00:00Z"></head>
<body><nav><a href="/">Home</a></nav><article><h1>Bridge reopens after repairs</h1>
<p>The old river bridge reopened on Thursday after eleven months of repairs costing 4.2 million euros.</p>
<p>Mayor Lena Okafor said the crossing would carry 12,000 cars a day, and cyclists get a separate lane.</p>
<p>Engineers found corroded cables during an inspection last spring, which forced the closure.</p>
</article><footer>Copyright City Paper</footer></body></html>"""


def run(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env or {})


@pytest.mark.integration
def test_private_addresses_are_refused_by_default_with_the_setting_that_allows_them(news_site, tmp_path):
    result = run("index", f"{news_site}/news/bridge-reopens", "--index-dir", str(tmp_path / "ix"), "--json")
    assert result.exit_code == 1
    reason = json.loads(result.stdout)["failed"][0]["reason"]
    assert "127.0.0.1 is a loopback address" in reason and "ARTICLEQA_ALLOW_PRIVATE_URLS" in reason


def test_bad_allowed_network_is_a_one_line_configuration_error(tmp_path):
    result = run(
        "index", str(SEED), "--index-dir", str(tmp_path / "ix"), env={"ARTICLEQA_ALLOWED_NETWORKS": '["intranet"]'}
    )
    assert result.exit_code == 2
    assert "invalid network 'intranet'" in result.output and "Traceback" not in result.output


def test_control_characters_in_failed_names_are_escaped(tmp_path):
    bad = tmp_path / "\x1b[2Jbad\nname.txt"
    bad.write_text("", encoding="utf-8")
    result = run("index", str(bad), "--index-dir", str(tmp_path / "ix"))
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "\\x1b[2Jbad\\nname.txt" in result.output


def test_index_prints_summary_then_skips_unchanged(tmp_path):
    index_dir = tmp_path / "ix"
    first = run("index", str(SEED), "--index-dir", str(index_dir))
    assert first.exit_code == 0, first.output
    assert "added" in first.stdout and "│     1 │" in first.stdout
    second = run("index", str(SEED), "--index-dir", str(index_dir), "--json")
    assert second.exit_code == 0
    data = json.loads(second.stdout)
    assert data["summary"]["unchanged"] == 1 and data["summary"]["chunks_added"] == 0
    assert data["unchanged"] == [SEED_ID]


def test_verbose_says_how_the_embedding_model_ran(tmp_path):
    result = run("index", str(SEED), "--index-dir", str(tmp_path / "ov"), "--verbose")
    assert result.exit_code == 0, result.output
    assert re.search(r"embedding model: OpenVINO, (fp32|bf16|int8) \(", result.output), result.output
    torch_run = run(
        "index",
        str(SEED),
        "--index-dir",
        str(tmp_path / "pt"),
        "--verbose",
        env={"ARTICLEQA_EMBEDDING_BACKEND": "torch"},
    )
    assert torch_run.exit_code == 0, torch_run.output
    assert "embedding model: PyTorch requested" in torch_run.output


def test_index_dir_from_environment(tmp_path):
    index_dir = tmp_path / "from-env"
    result = run("index", str(SEED), "--quiet", env={"ARTICLEQA_INDEX_DIR": str(index_dir)})
    assert result.exit_code == 0, result.output
    assert (index_dir / "manifest.json").exists()


def test_failed_input_gives_exit_code_1_and_names_it(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"title": "ok", "body": "A good line."}\n{oops\n', encoding="utf-8")
    result = run("index", str(bad), str(tmp_path / "nope.txt"), "--index-dir", str(tmp_path / "ix"))
    assert result.exit_code == 1
    assert "nope.txt: no such file or directory" in result.stderr
    assert "line 2: invalid JSON" in result.stderr
    assert "│     1 │" in result.stdout  # the good line was still indexed


def test_bad_setting_is_a_clear_error(tmp_path):
    result = run("index", str(SEED), env={"ARTICLEQA_CHUNK_SIZE": "10"})
    assert result.exit_code == 2
    assert "chunk_size" in result.stderr and "Traceback" not in result.output


def test_other_embedding_model_is_a_clear_error(tmp_path):
    index_dir = tmp_path / "ix"
    assert run("index", str(SEED), "--index-dir", str(index_dir), "-q").exit_code == 0
    model_dir = tmp_path / "other-model"
    model_dir.mkdir()
    result = run("index", str(SEED), "--index-dir", str(index_dir), env={"ARTICLEQA_EMBEDDING_MODEL": str(model_dir)})
    assert result.exit_code == 2
    assert "was built with embedding model 'bundled:all-MiniLM-L6-v2'" in result.stderr
    assert "--rebuild" in result.stderr


def test_prune_and_rebuild_flags(tmp_path):
    index_dir = tmp_path / "ix"
    feed = write_jsonl(tmp_path / "feed.jsonl", corpus_rows(3))
    assert run("index", str(feed), str(SEED), "--index-dir", str(index_dir), "-q").exit_code == 0
    pruned = run("index", str(feed), "--index-dir", str(index_dir), "--prune", "--json")
    assert json.loads(pruned.stdout)["removed"] == [SEED_ID]
    rebuilt = run("index", str(SEED), "--index-dir", str(index_dir), "--rebuild", "--json")
    data = json.loads(rebuilt.stdout)
    assert data["added"] == [SEED_ID] and data["summary"]["unchanged"] == 0
    store = open_index(index_dir)
    assert [a.id for a in store.articles.list()] == [SEED_ID]
    store.close()


@pytest.fixture
def news_site():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - stdlib name
            if self.path == "/news/bridge-reopens":
                body = PAGE.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.integration
def test_index_urls_from_a_real_local_server(news_site, tmp_path):
    index_dir = tmp_path / "ix"
    result = run(
        "index",
        f"{news_site}/news/bridge-reopens",
        f"{news_site}/news/missing",
        "--index-dir",
        str(index_dir),
        "--json",
        env={"ARTICLEQA_ALLOWED_NETWORKS": '["127.0.0.1/32"]'},
    )
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert len(data["added"]) == 1
    assert data["failed"][0]["origin"].endswith("/news/missing") and "404" in data["failed"][0]["reason"]
    store = open_index(index_dir)
    article = store.articles.get(data["added"][0])
    assert article.title == "Bridge reopens after repairs" or article.title.startswith("Bridge reopens")
    assert article.author == "Ada Reporter"
    assert str(article.published_at) == "2024-05-02"
    assert "12,000 cars a day" in article.text
    hit = store.lexical.search("Okafor", k=1)[0]
    assert store.lexical.get([hit.chunk_id])[hit.chunk_id].article_id == article.id
    store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_index_into_a_chroma_server(chroma_server, tmp_path):
    index_dir = tmp_path / "ix"
    args = ["index", str(SEED), "--index-dir", str(index_dir), "--chroma-url", chroma_server, "--json"]
    first = run(*args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["added"] == [SEED_ID]
    assert not (index_dir / "chroma").exists(), "no embedded Chroma when a server is used"
    again = run(*args)
    assert json.loads(again.stdout)["summary"]["chunks_added"] == 0
    store = open_index(index_dir, chroma_url=chroma_server)
    hit = store.hybrid.similarity_search("waste of time", k=1)[0]
    assert hit.metadata["article_id"] == SEED_ID
    assert store.dense_ids() == store.lexical.chunk_ids()
    store.close()
    # A rebuild writes a new collection beside the live one and drops the old one after the switch.
    rebuilt = run(
        "index", str(SEED), "--rebuild", "--index-dir", str(index_dir), "--chroma-url", chroma_server, "--json"
    )
    assert rebuilt.exit_code == 0, rebuilt.output
    store = open_index(index_dir, chroma_url=chroma_server)
    assert store.collection.startswith("articleqa.gen-")
    names = [c.name for c in store.client.list_collections()]
    assert names == [store.collection], names
    assert store.dense_ids() == store.lexical.chunk_ids() == store.record_keys() != set()
    store.close()


def test_unreachable_chroma_server_is_a_clear_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    result = run("index", str(SEED), "--index-dir", str(tmp_path / "ix"), "--chroma-url", url)
    assert result.exit_code == 2
    assert f"cannot reach the Chroma server at {url}" in result.stderr


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("articleqa")
    result = subprocess.run([str(script), "index", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "--prune" in result.stdout and "--rebuild" in result.stdout


def test_a_model_that_cannot_load_is_one_line_not_a_traceback(tmp_path):
    """The model loads lazily, mid-command; the `articleqa` entry point still reports it cleanly."""
    script = Path(sys.executable).with_name("articleqa")
    result = subprocess.run(
        [str(script), "index", str(SEED), "--index-dir", str(tmp_path / "ix"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ARTICLEQA_EMBEDDING_MODEL": str(tmp_path / "no-such-model")},
    )
    assert result.returncode == 2
    assert "error: embedding model folder" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
