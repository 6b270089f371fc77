"""A real `articleqa serve` keeps answering, with no error, while real `articleqa index`
processes add articles and rebuild the same index folder, and answers from the new articles
once they have finished, without a restart (issue 11 part 3)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bench.load import HttpUser, free_port, start_serve, stop_serve, wait_until_up
from tests.conftest import (
    BRIDGE,
    BRIDGE_Q,
    SEED,
    SEED_ID,
    WASTE_Q,
    corpus_rows,
    write_jsonl,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # a real `articleqa serve` on 127.0.0.1


def ask_once(url: str, question: str) -> dict:
    """One question on a new connection (an idle kept-alive one is closed by the server)."""
    user = HttpUser(url)
    try:
        return user.ask(question)
    finally:
        user.close()


def articleqa(*args: str) -> None:
    script = Path(sys.executable).with_name("articleqa")
    done = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.mark.timeout(600)
def test_serve_answers_throughout_and_then_from_the_new_articles(tmp_path):
    index_dir = tmp_path / "index"
    articleqa(
        "index", str(SEED), str(write_jsonl(tmp_path / "rows.jsonl", corpus_rows(20))), "--index-dir", str(index_dir)
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = start_serve(index_dir, port, tmp_path / "serve.log")
    stop = threading.Event()
    answered: list[str] = []
    errors: list[str] = []

    def keep_asking() -> None:
        user = HttpUser(url)
        try:
            while not stop.is_set():
                try:
                    answer = user.ask(WASTE_Q)
                    cited = [c["article_id"] for c in answer["citations"]]
                    (answered if cited[:1] == [SEED_ID] else errors).append(str(cited))
                except Exception as exc:  # noqa: BLE001 -- collected and asserted below
                    errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            user.close()

    askers: list[threading.Thread] = []
    try:
        wait_until_up(url, proc, tmp_path / "serve.log")
        assert not ask_once(url, BRIDGE_Q)["grounded"]
        askers = [threading.Thread(target=keep_asking) for _ in range(2)]
        for t in askers:
            t.start()
        bridge = tmp_path / "new" / "zorvath-bridge.txt"
        bridge.parent.mkdir()
        bridge.write_text(BRIDGE, encoding="utf-8")
        more = write_jsonl(tmp_path / "more.jsonl", corpus_rows(60)[20:])
        articleqa("index", str(bridge), str(more), "--index-dir", str(index_dir))
        during_add = len(answered)
        answer = ask_once(url, BRIDGE_Q)
        assert answer["grounded"] and answer["citations"][0]["article_id"] == "zorvath-bridge"
        articleqa("index", str(SEED), str(bridge), "--rebuild", "--index-dir", str(index_dir))
        answer = ask_once(url, BRIDGE_Q)
        assert answer["grounded"] and answer["citations"][0]["article_id"] == "zorvath-bridge"
    finally:
        stop.set()
        for t in askers:
            t.join(timeout=120)
        stop_serve(proc)
    assert errors == [], errors[:5]
    assert during_add > 0 and len(answered) > during_add  # answers throughout, not only before
