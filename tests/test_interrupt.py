"""A run killed half-way (SIGKILL or Ctrl-C) and then re-run leaves a consistent index."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from articleqa.index import chunk_article, index_paths, load_articles
from articleqa.index.store import IndexStore
from tests.conftest import corpus_rows, write_jsonl
from tests.test_indexer import assert_consistent

pytestmark = pytest.mark.slow


def count_rows(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0


def start_index(feed: Path, index_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "articleqa.ui.cli", "index", str(feed), "--index-dir", str(index_dir), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_partial_progress(proc: subprocess.Popen, index_dir: Path, timeout: float = 240) -> None:
    """Until the first batch of articles is fully written and more chunks are on the way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"indexing finished before it could be interrupted: {proc.stderr.read()}")
        if count_rows(index_dir / "articles.sqlite", "articles") >= 1:
            time.sleep(0.3)  # into the next batch: embedding / writing its chunks
            return
        time.sleep(0.1)
    proc.kill()
    pytest.fail("indexing made no progress in time")


@pytest.mark.parametrize("how", ["kill", "ctrl-c"])
def test_interrupted_run_then_rerun_is_consistent(how, tmp_path, embeddings):
    rows = corpus_rows(200)  # batches of 32 articles: about 13 s of indexing with OpenVINO
    feed = write_jsonl(tmp_path / "feed.jsonl", rows)
    index_dir = tmp_path / "index"

    proc = start_index(feed, index_dir)
    wait_for_partial_progress(proc, index_dir)
    if how == "kill":
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    else:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 130, stderr
        assert "interrupted" in stderr and "again" in stderr
    partial = count_rows(index_dir / "articles.sqlite", "articles")
    assert 1 <= partial < len(rows)

    store = IndexStore(index_dir, embeddings, embedding_model="bundled:all-MiniLM-L6-v2")
    report = index_paths(store, [feed])
    assert not report.failed
    assert len(report.added) + len(report.unchanged) == len(rows)
    assert store.articles.count() == len(rows)
    assert_consistent(store)

    # Exactly the chunks an uninterrupted run makes, each once.
    expected = {
        (a.id, c.start, c.end)
        for a in load_articles([feed]).articles
        for c in chunk_article(a, store.chunk_size, store.chunk_overlap)
    }
    stored = list(store.lexical.get(sorted(store.lexical.chunk_ids())).values())
    assert len(stored) == len(expected)
    assert {(r.article_id, r.start, r.end) for r in stored} == expected
    again = index_paths(store, [feed])
    assert again.chunks_added == 0 and len(again.unchanged) == len(rows)
    store.close()
