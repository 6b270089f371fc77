"""A Chroma server that goes away while `articleqa index` writes to it, or while a question is
answered (server mode, issue 12: "a failed write on either side is retried or rolled back").

Real PostgreSQL, a real `chroma run` stopped (SIGTERM) as soon as the run's first article rows
are in PostgreSQL, and the real CLI:
- restarted at once on the same port and data: the run's writes are tried again and it
  finishes as if nothing happened;
- gone for good: the run stops with a one-line error naming the server, the batch Chroma did not
  take is removed from the lexical index again (the two stores hold the same chunks), every
  article with a row is whole, and once the server is back the same command finishes the work.
A question asked while the server restarts is answered once it is back.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from articleqa.index import IndexStore, index_paths
from articleqa.index.pg_articles import ARTICLES
from articleqa.index.pg_lexical import CHUNKS
from articleqa.qa.api import ArticleQA
from tests.conftest import SEED, WASTE_Q, WASTE_SENTENCE, corpus_rows, write_jsonl
from tests.postgres_server import start_chroma

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # the real model; PostgreSQL and Chroma servers
ARTICLEQA = str(Path(sys.executable).with_name("articleqa"))
RUN_TIMEOUT = 300
MODEL = "bundled:all-MiniLM-L6-v2"


class Chroma:
    """A `chroma run` that can be stopped and started again on the same port and data."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.proc, self.url = start_chroma(folder)
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def start(self) -> None:
        self.proc, _ = start_chroma(self.folder, port=self.port)


@pytest.fixture
def chroma(tmp_path):
    server = Chroma(tmp_path / "chroma-data")
    yield server
    server.stop()


def rows_and_chunks(database_url: str) -> tuple[int, int, int]:
    """(article rows, chunks the rows say they have, chunk rows in the lexical table)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as db:
            if db.execute(text("SELECT to_regclass(:t)"), {"t": ARTICLES}).scalar() is None:
                return 0, 0, 0
            rows, promised = db.execute(text(f"SELECT count(*), coalesce(sum(chunk_count), 0) FROM {ARTICLES}")).one()
            chunks = db.execute(text(f"SELECT count(*) FROM {CHUNKS}")).scalar()
            return rows, int(promised), chunks
    finally:
        engine.dispose()


def index_while_chroma_stops(args: list[str], database_url: str, chroma: Chroma, restart: bool):
    """Run `articleqa index`, stop Chroma once its first article rows are in PostgreSQL and,
    when `restart`, start it again once the next batch is in the lexical index (its Chroma
    write, which follows at once, then meets the outage); the finished process."""
    proc = subprocess.Popen([ARTICLEQA, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + RUN_TIMEOUT

    def wait_for(reached) -> None:
        while not reached(rows_and_chunks(database_url)):
            assert proc.poll() is None, f"the run ended first: {proc.communicate()}"
            assert time.monotonic() < deadline, "the run made no progress within the time limit"
            time.sleep(0.02)

    wait_for(lambda state: state[0] > 0)
    chroma.stop()
    if restart:
        stopped_at = rows_and_chunks(database_url)[2]
        wait_for(lambda state: state[2] > stopped_at)
        chroma.start()
    out, err = proc.communicate(timeout=RUN_TIMEOUT)
    return proc.returncode, out, err


def check(args: list[str]) -> dict:
    done = subprocess.run([ARTICLEQA, "check", *args, "--json"], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def test_a_chroma_restart_during_indexing_is_ridden_out(chroma, database_url, tmp_path):
    feed = write_jsonl(tmp_path / "feed.jsonl", corpus_rows(120))
    where = ["--index-dir", str(tmp_path / "ix"), "--database-url", database_url, "--chroma-url", chroma.url]
    code, out, err = index_while_chroma_stops(["index", str(feed), *where, "--json"], database_url, chroma, True)
    assert code == 0, err[-3000:]
    assert "trying again" in err  # the outage was met, and ridden out
    assert len(json.loads(out)["added"]) == 120
    report = check(where)
    assert report["consistent"] and report["chroma_chunks"] == report["lexical_chunks"]
    rows, promised, chunks = rows_and_chunks(database_url)
    assert (rows, promised) == (120, chunks)


def test_a_chroma_server_gone_for_good_stops_the_run_cleanly(chroma, database_url, tmp_path):
    feed = write_jsonl(tmp_path / "feed.jsonl", corpus_rows(120))
    where = ["--index-dir", str(tmp_path / "ix"), "--database-url", database_url, "--chroma-url", chroma.url]
    code, _, err = index_while_chroma_stops(["index", str(feed), *where, "--quiet"], database_url, chroma, False)
    assert code == 1
    assert "Traceback" not in err
    assert f"lost the Chroma server at {chroma.url}" in err and "run the same command again" in err
    rows, promised, chunks = rows_and_chunks(database_url)
    assert 0 < rows < 120
    assert promised == chunks  # the batch Chroma did not take left nothing in the lexical index

    chroma.start()
    report = check(where)
    assert report["consistent"] and report["chroma_chunks"] == chunks  # the same chunks on both sides
    rerun = subprocess.run(
        [ARTICLEQA, "index", str(feed), *where, "--json"], capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert len(json.loads(rerun.stdout)["added"]) == 120 - rows
    assert check(where)["consistent"]
    rows, promised, chunks = rows_and_chunks(database_url)
    assert (rows, promised) == (120, chunks)


def test_a_question_asked_while_chroma_restarts_is_answered(chroma, database_url, embeddings, tmp_path, caplog):
    store = IndexStore(
        tmp_path / "ix", embeddings, embedding_model=MODEL, chroma_url=chroma.url, database_url=database_url
    )
    try:
        index_paths(store, [SEED])
        qa = ArticleQA(store)
        chroma.stop()
        restart = threading.Thread(target=chroma.start)  # about a second until it answers
        restart.start()
        with caplog.at_level(logging.WARNING, logger="articleqa.index.chroma_retry"):
            answer = qa.ask(WASTE_Q)
        restart.join(timeout=60)
    finally:
        store.close()
    assert any("trying again" in r.getMessage() for r in caplog.records)  # the outage was met
    assert answer.grounded and answer.citations[0].quote == WASTE_SENTENCE
