"""kill -9 of one indexer leaves the shared index consistent (server mode, issue 12).

The index lives in PostgreSQL (articles, lexical index, record manager, write lock) and a
`chroma run` server (vectors), both started by the tests. One feed grows over three stages, as a
shared index does: new articles, more new articles, then corrections (a correction put first
moves every chunk of its article) with more new ones; a fourth stage drops 40 articles from the
feed and runs `articleqa index --prune`. Each stage's `articleqa index` is started
as the real CLI in its own process group and the whole group is SIGKILLed at moments drawn
from a seeded generator:

- "lexical": as soon as the run's first chunk rows are in PostgreSQL (polled every millisecond):
  usually before Chroma has the same chunks (the lexical index is written first, then Chroma,
  then the record manager, then the article rows);
- "chunks": up to 50 ms later than that: Chroma, the record manager or the rows may be written;
- "rows": up to 1 s after the run's first article rows appear (mid-indexing, between batches
  or inside one);
- "delay": a delay from the start, up to the shortest time to a first write seen so far
  (importing, opening the stores, holding the write lock, loading the model, embedding);
- "pruned": up to 0.3 s after the first article row of the prune run is gone (pruning deletes
  each article's row, then its records, then its chunks from Chroma, then from the lexical
  table, so a kill may leave chunks without a row, or in the lexical table only).

After every kill, read straight from PostgreSQL and Chroma:
(a) every article row (what questions can see) has exactly the chunks of its version, in both
    Chroma and the lexical table and recorded, and a question is answered only from such
    articles, each citation's quote the article's text at its offsets;
(b) the write lock is free once the killed process's connections are gone: a new writer gets
    it at once, and the re-run never waits;
(c) `articleqa check` reports exactly the chunks found on one side only.
Each stage ends with the same `articleqa index` run to completion: it indexes exactly the
articles without a current row, then `articleqa check` finds no difference, every input article
is there exactly once at its version with exactly the chunks of an uninterrupted run, no chunk
is duplicated in Chroma, the lexical table or the record manager, and a question whose answer
is in the feed is answered with a citation.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from sqlalchemy import create_engine, text

from articleqa.index import load_articles
from articleqa.index.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE
from articleqa.index.database import lock_key
from articleqa.index.models import Article
from articleqa.index.pg_articles import ARTICLES
from articleqa.index.pg_lexical import CHUNKS, VECTORS
from articleqa.index.store import DEFAULT_COLLECTION, IndexStore
from articleqa.qa.api import ArticleQA
from tests.conftest import BRIDGE, BRIDGE_Q, corpus_rows, serve_chroma, write_jsonl
from tests.test_kill9 import Estimate, corrected, expected_spans, shortened

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # the real model; PostgreSQL and Chroma servers

ARTICLEQA = Path(sys.executable).with_name("articleqa")
MODEL = "bundled:all-MiniLM-L6-v2"
SEED = 12
RUN_TIMEOUT = 240  # seconds for any one CLI run: a hang fails the test instead of stalling it
LOCK_RELEASE_TIMEOUT = 30  # seconds for PostgreSQL to drop a killed client's connections
POLL = 0.01
FAST_POLL = 0.001
NAMESPACE = f"articleqa/{DEFAULT_COLLECTION}"  # the record manager's namespace and write lock's name
TEST_APP = "articleqa-kill9-test"  # application_name of the test's own connections
BRIDGE_ID = "zorvath-bridge"
BRIDGE_ANSWER = "9.7 million euros"


# ---- servers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chroma(tmp_path_factory) -> Iterator[str]:
    """A `chroma run` server for this module; failing to start it fails the test (never a skip)."""
    yield from serve_chroma(tmp_path_factory.mktemp("kill9-chroma"))


@pytest.fixture(scope="module")
def database(postgres) -> str:
    """A new, empty database for this module on the session's PostgreSQL (conftest's
    `postgres`, which fails when no server can be started)."""
    return postgres.create_database("kill9")


# ---- the feed ------------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    rows: list[dict]  # the whole feed at this stage
    anchors: list[str]  # one killed run per anchor, in this order, then a run to completion
    prune: bool = False  # run with --prune: articles no longer in the feed are removed


def bridge_row() -> dict:
    """conftest's made-up article (no corpus mentions it) as a feed row: the question about it
    is answered only from it."""
    title, body = BRIDGE.split("\n\n", 1)
    return {"id": BRIDGE_ID, "title": title, "source": "City Desk", "published_at": "2020-03-02", "body": body}


def make_stages() -> list[Stage]:
    rows = [shortened(r) for r in corpus_rows(160)]
    a = rows[0:20] + [bridge_row()] + rows[20:40]  # 41 new: two batches (32 + 9)
    b = a + rows[40:136]  # 96 new: three whole batches, two left after the first rows
    c = [corrected(r, "C") for r in b[0:12]] + b[12:] + rows[136:160]  # 12 corrected first, 24 new
    d = c[:21] + c[61:]  # 40 articles leave the feed (the bridge article, c[20], stays)
    return [
        Stage("A", a, ["lexical"]),
        Stage("B", b, ["delay", "rows"]),
        Stage("C", c, ["chunks"]),
        Stage("D", d, ["pruned", "pruned"], prune=True),
    ]


# ---- reading the servers' state ------------------------------------------------------------


@dataclass
class State:
    """What PostgreSQL and Chroma hold for the index."""

    rows: dict[str, tuple[str, int, str]]  # article id -> (content hash, chunk count, text)
    lexical: list[tuple[str, str, int, int]]  # (chunk id, article id, start, end), every row
    dense: list[tuple[str, str, int, int]]  # the same from Chroma's ids and metadata
    records: list[tuple[str, str]]  # (key, group id) of the record manager's namespace
    vectors: int  # sentence-vector rows

    @property
    def lexical_ids(self) -> set[str]:
        return {c[0] for c in self.lexical}

    @property
    def dense_ids(self) -> set[str]:
        return {c[0] for c in self.dense}

    @property
    def record_keys(self) -> set[str]:
        return {k for k, _ in self.records}

    def chunks_of(self, side: list[tuple[str, str, int, int]], article_id: str) -> set[tuple[str, int, int]]:
        return {(cid, start, end) for cid, aid, start, end in side if aid == article_id}


class Servers:
    """The test's own view of the index: SQL on PostgreSQL, Chroma's HTTP API."""

    def __init__(self, database_url: str, chroma_url: str):
        self.database_url, self.chroma_url = database_url, chroma_url
        self.engine = create_engine(database_url, connect_args={"application_name": TEST_APP})
        import chromadb
        from chromadb.config import Settings

        parsed = urlparse(chroma_url)
        self.chroma = chromadb.HttpClient(
            host=parsed.hostname, port=parsed.port, settings=Settings(anonymized_telemetry=False)
        )

    def close(self) -> None:
        self.engine.dispose()

    def _tables(self, db) -> set[str]:
        names = [ARTICLES, CHUNKS, VECTORS, "upsertion_record"]
        found = db.execute(
            text("SELECT n FROM unnest(CAST(:names AS text[])) n WHERE to_regclass(n) IS NOT NULL"), {"names": names}
        )
        return set(found.scalars())

    def progress(self) -> tuple[int, dict[str, str]]:
        """(the chunk table's highest sequence number, article id -> content hash): cheap enough
        to poll every 10 ms."""
        with self.engine.connect() as db:
            tables = self._tables(db)
            seq = db.execute(text(f"SELECT coalesce(max(seq), 0) FROM {CHUNKS}")).scalar() if CHUNKS in tables else 0
            rows = (
                dict(db.execute(text(f"SELECT id, content_hash FROM {ARTICLES}")).all()) if ARTICLES in tables else {}
            )
        return seq, rows

    def state(self) -> State:
        with self.engine.connect() as db:
            tables = self._tables(db)
            rows = {}
            if ARTICLES in tables:
                for aid, h, n, body in db.execute(text(f"SELECT id, content_hash, chunk_count, text FROM {ARTICLES}")):
                    rows[aid] = (h, n, body)
            lexical = (
                [tuple(r) for r in db.execute(text(f'SELECT chunk_id, article_id, start, "end" FROM {CHUNKS}'))]
                if CHUNKS in tables
                else []
            )
            vectors = db.execute(text(f"SELECT count(*) FROM {VECTORS}")).scalar() if VECTORS in tables else 0
            records = (
                [
                    tuple(r)
                    for r in db.execute(
                        text("SELECT key, group_id FROM upsertion_record WHERE namespace = :ns"), {"ns": NAMESPACE}
                    )
                ]
                if "upsertion_record" in tables
                else []
            )
        try:
            got = self.chroma.get_collection(DEFAULT_COLLECTION).get(include=["metadatas"])
        except Exception:  # no collection yet (killed before opening it)
            got = {"ids": [], "metadatas": []}
        dense = [(i, m["article_id"], m["start"], m["end"]) for i, m in zip(got["ids"], got["metadatas"])]
        return State(rows, sorted(lexical), sorted(dense), sorted(records), vectors)

    def settled_state(self, timeout: float = 10.0) -> State:
        """The state once two reads 0.2 s apart agree: a request the killed process had sent
        in full may still be applied by a server just after the kill."""
        state = self.state()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.2)
            again = self.state()
            if again == state:
                return state
            state = again
        pytest.fail(f"the index was still changing {timeout:.0f}s after the kill")

    def lock_is_free(self) -> bool:
        """Whether a writer gets the index's write lock at once (taken and given back)."""
        key = lock_key(f"write:{NAMESPACE}")
        with self.engine.connect() as db:
            got = db.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
            if got:
                db.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            db.commit()
        return bool(got)

    def other_connections(self) -> int:
        """Client connections to the database other than the test's own."""
        with self.engine.connect() as db:
            return db.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND backend_type = 'client backend' AND application_name <> :app"
                ),
                {"app": TEST_APP},
            ).scalar()


# ---- the checks ----------------------------------------------------------------------------


def spans_by_version(*article_sets: list[Article]) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """(article id, content hash) -> the (start, end) of the chunks an uninterrupted run over
    that set of articles makes for it."""
    out: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for articles in article_sets:
        hashes = {a.id: a.content_hash for a in articles}
        spans: dict[str, list[tuple[int, int]]] = {a.id: [] for a in articles}
        for aid, start, end in expected_spans(articles, DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_OVERLAP):
            spans[aid].append((start, end))
        out.update({(aid, hashes[aid]): sorted(s) for aid, s in spans.items()})
    return out


def check_visible(state: State, versions: dict[tuple[str, str], list[tuple[int, int]]], what: str) -> None:
    """(a) Every article row has exactly the chunks of its version, in Chroma and the lexical
    table alike, all of them recorded: no half article is visible."""
    records = state.record_keys
    problems = []
    for aid, (content_hash, count, _) in sorted(state.rows.items()):
        lexical, dense = state.chunks_of(state.lexical, aid), state.chunks_of(state.dense, aid)
        expected = versions.get((aid, content_hash))
        if expected is None:
            problems.append(f"{aid}: row at an unknown version {content_hash[:12]}")
        elif lexical != dense:
            problems.append(
                f"{aid}: {len(lexical - dense)} chunks only in the lexical table, {len(dense - lexical)} only in Chroma"
            )
        elif sorted((s, e) for _, s, e in lexical) != expected or count != len(expected):
            problems.append(
                f"{aid}: chunks {sorted((s, e) for _, s, e in lexical)} (row says {count}), its version has {expected}"
            )
        elif not {cid for cid, _, _ in lexical} <= records:
            problems.append(f"{aid}: {len({cid for cid, _, _ in lexical} - records)} chunks not recorded")
    assert problems == [], f"{what}: visible articles that are not whole:\n" + "\n".join(problems[:20])


def check_no_duplicates(state: State, what: str) -> None:
    for name, ids in (
        ("Chroma", [c[0] for c in state.dense]),
        ("the lexical table", [c[0] for c in state.lexical]),
        ("the record manager", [k for k, _ in state.records]),
    ):
        twice = [i for i, n in Counter(ids).items() if n > 1]
        assert twice == [], f"{what}: chunk ids more than once in {name}: {twice[:5]}"
    for name, side in (("Chroma", state.dense), ("the lexical table", state.lexical)):
        places = Counter((aid, start, end) for _, aid, start, end in side)
        twice = [p for p, n in places.items() if n > 1]
        assert twice == [], f"{what}: the same chunk under several ids in {name}: {twice[:5]}"


def check_answers(database_url: str, chroma_url: str, embeddings, state: State, tmp_path: Path, what: str):
    """Ask the feed's question through the Python API: every citation is an article with a row,
    its quote that article's text at its offsets; the answer comes from the bridge article
    exactly when that article is visible."""
    store = IndexStore(
        tmp_path / "reader", embeddings, embedding_model=MODEL, chroma_url=chroma_url, database_url=database_url
    )
    try:
        answer = ArticleQA(store).ask(BRIDGE_Q)
    finally:
        store.close()
    for citation in [*answer.citations, *answer.related]:
        assert citation.article_id in state.rows, f"{what}: cited {citation.article_id}, which has no row"
    for citation in answer.citations:
        body = state.rows[citation.article_id][2]
        assert body[citation.start : citation.end] == citation.quote, (
            f"{what}: the quote of [{citation.n}] is not {citation.article_id}'s text at {citation.start}:{citation.end}"
        )
    if BRIDGE_ID in state.rows:
        assert answer.grounded and BRIDGE_ANSWER in answer.text, f"{what}: {answer.text!r}"
        assert answer.citations and answer.citations[0].article_id == BRIDGE_ID, f"{what}: {answer.citations}"
        assert BRIDGE_ANSWER in answer.citations[0].quote
    else:
        assert BRIDGE_ANSWER not in answer.text, f"{what}: answered from an article without a row: {answer.text!r}"
    return answer


# ---- running the CLI -----------------------------------------------------------------------


@dataclass
class Kill:
    number: int
    stage: str
    anchor: str
    draw: float
    at: float = 0.0  # seconds after the start
    killed: bool = False
    wrote: bool = False  # chunks of this run reached PostgreSQL
    rows_before: int = 0  # articles at the stage's version when the run started
    rows_after: int = 0
    rows: int = 0  # article rows, any version
    total: int = 0
    lexical: int = 0
    dense: int = 0
    only_lexical: int = 0
    only_dense: int = 0
    pruned: bool = False  # a prune run (the phase is then told by the rows left)

    def line(self) -> str:
        phase = (
            "finished before the kill"
            if not self.killed
            else f"mid-prune, {self.rows - self.total} of the dropped articles' rows left"
            if self.pruned
            else "after the last article row"
            if self.rows_after == self.total
            else "mid-indexing"
            if self.rows_after > self.rows_before
            else "chunks written, no article row of this run yet"
            if self.wrote
            else "before any chunk write"
        )
        return (
            f"kill {self.number} stage {self.stage} anchor {self.anchor:6s} at {self.at:5.2f}s: {phase}; "
            f"article rows {self.rows}, {self.rows_after}/{self.total} at this stage's version ({self.rows_before} "
            f"when started), "
            f"lexical {self.lexical}, Chroma {self.dense}, only lexical {self.only_lexical}, only Chroma {self.only_dense}"
        )


def index_args(feed: Path, tmp_path: Path, database_url: str, chroma_url: str, prune: bool = False) -> list[str]:
    return [
        "index", str(feed), "--index-dir", str(tmp_path / "writer"),
        "--database-url", database_url, "--chroma-url", chroma_url, *(["--prune"] if prune else []),
    ]  # fmt: skip


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ARTICLEQA), *args], capture_output=True, text=True, cwd=cwd, timeout=RUN_TIMEOUT, check=False
    )


def killed_run(
    args: list[str], cwd: Path, servers: Servers, expected: dict[str, str], kill: Kill, first_write: Estimate
) -> None:
    """Start the CLI in its own process group, wait for `kill.anchor`, SIGKILL the group."""
    seq0, rows0 = servers.progress()
    kill.total = len(expected)
    kill.rows_before = sum(expected.get(aid) == h for aid, h in rows0.items())
    delays = {
        "delay": 0.5 + kill.draw * max(0.0, first_write.seconds - 0.5),
        "lexical": 0.0,
        "chunks": kill.draw * 0.05,
        "rows": kill.draw * 1.0,
        "pruned": kill.draw * 0.3,
    }
    errors = cwd / f"kill-{kill.number}.stderr"
    with errors.open("w") as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            [str(ARTICLEQA), *args], stdout=subprocess.DEVNULL, stderr=err, cwd=cwd, start_new_session=True
        )
        fire = started + delays["delay"] if kill.anchor == "delay" else None
        try:
            while proc.poll() is None:
                now = time.monotonic()
                if now - started > RUN_TIMEOUT:
                    pytest.fail(f"kill {kill.number}: the run made no progress in {RUN_TIMEOUT}s")
                if fire is not None and now >= fire:
                    os.killpg(proc.pid, signal.SIGKILL)
                    kill.at = now - started
                    break
                seq, rows = servers.progress()
                if not kill.wrote and seq > seq0:
                    kill.wrote = True
                    first_write.saw(now - started)
                done = sum(expected.get(aid) == h for aid, h in rows.items())
                if fire is None:
                    reached = {
                        "lexical": kill.wrote,
                        "chunks": kill.wrote,
                        "rows": done > kill.rows_before,
                        "pruned": len(rows) < len(rows0),
                    }
                    if reached[kill.anchor]:
                        fire = now + delays[kill.anchor]
                        if fire <= now:
                            continue
                pause = FAST_POLL if kill.anchor == "lexical" else POLL  # Chroma's write follows in ms
                time.sleep(max(0.0, min(pause, (fire - now) if fire is not None else pause)))
        finally:
            if proc.poll() is None and not kill.at:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    kill.killed = proc.returncode == -signal.SIGKILL  # not when it had just exited by itself
    if not kill.killed:
        assert proc.returncode == 0, f"kill {kill.number}: the run failed: {errors.read_text()[-3000:]}"


def wait_for_lock(servers: Servers, what: str) -> None:
    """(b) Once PostgreSQL has dropped the killed process's connections, the write lock is free."""
    deadline = time.monotonic() + LOCK_RELEASE_TIMEOUT
    while servers.other_connections():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: the killed indexer's connections were still open after {LOCK_RELEASE_TIMEOUT}s")
        time.sleep(0.05)
    assert servers.lock_is_free(), f"{what}: the write lock is still held, with no indexer connected"


def check_report(args: list[str], cwd: Path, state: State, what: str) -> dict:
    """(c) `articleqa check --json` reports exactly the chunks on one side only."""
    result = cli(["check", *args, "--json"], cwd)
    assert result.returncode in (0, 1), f"{what}: check failed: {result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    assert report["chroma_chunks"] == len(state.dense_ids), what
    assert report["lexical_chunks"] == len(state.lexical_ids), what
    assert report["only_in_chroma"] == sorted(state.dense_ids - state.lexical_ids), what
    assert report["only_in_lexical"] == sorted(state.lexical_ids - state.dense_ids), what
    assert report["consistent"] == (result.returncode == 0) == (state.dense_ids == state.lexical_ids), what
    return report


# ---- the test ------------------------------------------------------------------------------


@pytest.mark.timeout(900)  # about 2 minutes on 2 busy cores; the first run exports the model
def test_kill9_of_one_indexer_leaves_the_shared_index_consistent(database, chroma, embeddings, tmp_path):
    started = time.monotonic()
    rng = random.Random(SEED)
    servers = Servers(database, chroma)
    feed = tmp_path / "feed.jsonl"
    where = ["--index-dir", str(tmp_path / "checker"), "--database-url", database, "--chroma-url", chroma]
    first_write = Estimate()
    log: list[str] = []

    def say(line: str) -> None:
        log.append(line)
        print(line, flush=True)

    previous: list[Article] = []
    kills: list[Kill] = []
    try:
        for stage in make_stages():
            write_jsonl(feed, stage.rows)
            articles = load_articles([feed]).articles
            assert len(articles) == len(stage.rows)
            expected = {a.id: a.content_hash for a in articles}
            versions = spans_by_version(previous, articles)
            args = index_args(feed, tmp_path, database, chroma, stage.prune)
            for anchor in stage.anchors:
                kill = Kill(len(kills) + 1, stage.name, anchor, rng.random(), pruned=stage.prune)
                killed_run(args, tmp_path, servers, expected, kill, first_write)
                kills.append(kill)
                what = f"kill {kill.number} (stage {stage.name}, {anchor})"
                wait_for_lock(servers, what)  # (b), and nothing of the killed run is still being written
                state = servers.settled_state()
                kill.rows = len(state.rows)
                kill.rows_after = sum(expected.get(aid) == h for aid, (h, _, _) in state.rows.items())
                kill.lexical, kill.dense = len(state.lexical_ids), len(state.dense_ids)
                kill.only_lexical = len(state.lexical_ids - state.dense_ids)
                kill.only_dense = len(state.dense_ids - state.lexical_ids)
                say(kill.line())
                context = "\n".join(log)
                # A kill never takes away an article the run had nothing to do for; a changed one
                # is at its old version, its new one, or (caught mid-batch) not visible at all.
                kept = {a.id for a in previous if expected.get(a.id) == a.content_hash}
                missing = sorted(kept - set(state.rows))
                assert missing == [], f"{what}: unchanged articles indexed before are gone: {missing[:5]}\n{context}"
                check_visible(state, versions, f"{what}\n{context}")
                check_no_duplicates(state, what)
                check_answers(database, chroma, embeddings, state, tmp_path, what)
                check_report(where, tmp_path, state, what)

            # The same command again, to completion: it finishes exactly what the kills left.
            state = servers.state()
            left = {aid for aid, h in expected.items() if state.rows.get(aid, ("",))[0] != h}
            rerun = cli([*args, "--json"], tmp_path)
            what = f"stage {stage.name} after its kills and a re-run"
            assert rerun.returncode == 0, f"{what}: {rerun.stderr[-3000:]}"
            assert "waiting for another process" not in rerun.stderr, f"{what}: the re-run waited for the lock"
            report = json.loads(rerun.stdout)
            assert set(report["added"]) | set(report["updated"]) == left, what
            assert set(report["unchanged"]) == set(expected) - left, what
            if stage.prune:  # it removes exactly the dropped articles the kills left a row for
                assert set(report["removed"]) == set(state.rows) - set(expected), what

            state = servers.state()
            checked = check_report(where, tmp_path, state, what)
            assert checked["consistent"] and checked["chroma_chunks"] == checked["lexical_chunks"], checked
            assert {aid: h for aid, (h, _, _) in state.rows.items()} == expected, (
                f"{what}: the article rows are not the feed's articles at their versions"
            )
            check_no_duplicates(state, what)
            assert state.lexical_ids == state.dense_ids == state.record_keys, what
            assert Counter(g for _, g in state.records) == Counter(aid for _, aid, _, _ in state.lexical), what
            spans = sorted((aid, start, end) for _, aid, start, end in state.lexical)
            assert spans == expected_spans(articles, DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_OVERLAP), (
                f"{what}: the stored chunks are not the ones an uninterrupted run makes"
            )
            assert sorted((aid, s, e) for _, aid, s, e in state.dense) == spans, what
            assert sum(n for _, n, _ in state.rows.values()) == len(state.lexical), what
            assert state.vectors == len(state.lexical), f"{what}: {state.vectors} sentence-vector rows"
            answer = check_answers(database, chroma, embeddings, state, tmp_path, what)
            assert answer.grounded and answer.citations[0].article_id == BRIDGE_ID, what
            say(
                f"stage {stage.name}: {len(articles)} articles, {len(state.lexical)} chunks, consistent after the re-run"
            )
            previous = articles
    finally:
        servers.close()

    real = [k for k in kills if k.killed]
    say(f"{len(real)} of {len(kills)} runs killed, {time.monotonic() - started:.0f}s")
    # Kills land before their runs end (a much faster machine may finish one first).
    assert len(real) >= len(kills) - 1, "\n".join(log)
    assert any(k.wrote for k in real), "\n".join(log)
    assert any(k.rows_before < k.rows_after < k.total for k in real), "no kill landed mid-indexing\n" + "\n".join(log)
    dropped = len(make_stages()[2].rows) - len(make_stages()[3].rows)
    assert any(k.pruned and 0 < k.rows - k.total < dropped for k in real), "no kill landed mid-prune\n" + "\n".join(log)
