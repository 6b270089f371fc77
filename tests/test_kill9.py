"""kill -9 at eleven random moments of real `articleqa index` runs and rebuilds (issue 11).

One index folder goes through four stages, like a feed growing over days: new articles, then
corrected ones (a correction put first moves every chunk, so all are replaced) with more new
ones, a `--rebuild` onto a smaller set, and corrections and new articles again. Each stage's
command is started as the real CLI and SIGKILLed two or three times, at moments drawn from a
seeded generator (each run after the first is the re-run continuing the killed one), then run
once more to completion. Then the index must hold exactly the stage's articles: Chroma ids ==
lexical chunk ids == record-manager keys, no id twice, exactly the chunks an uninterrupted run
makes, one row per article with the right chunk count, no half-built generation left, and a
further run adds and updates nothing. After each killed rebuild the old index must still be the
live one, intact and consistent (or, killed after the atomic switch, the new one complete).

Kill moments: "time" (between 0.5 s and the shortest time to a first write seen so far, but
never after this run's first write: imports, opening the stores, the write lock, loading the
model, embedding the first batch), "write" (within 50 ms of
the run's first chunks reaching the lexical index: Chroma, the record manager or the article
rows may still be missing), "batch" (up to 1.5 s after the first whole batch of article rows)
and "end" (up to 0.5 s after the last article row: closing, or for a rebuild the switch and the
removal of the old generation). A run that ends before its kill is run again, and kills an
index stage has no work left for move to the next stage. The state found at each kill is
printed (`pytest -s`; pytest shows it with any failure) and is in the loop's assertion messages.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from articleqa.index import chunk_article, load_articles, open_index
from articleqa.index.boilerplate import boilerplate_spans
from articleqa.index.folder import DATA_NAMES, GENERATION_PREFIX, IndexFolder
from articleqa.index.indexer import ARTICLES_PER_BATCH
from articleqa.index.models import Article
from tests.conftest import corpus_rows, write_jsonl

pytestmark = pytest.mark.slow

ARTICLEQA = Path(sys.executable).with_name("articleqa")
SEED = 11
FEEDS = ("feed-a.jsonl", "feed-b.jsonl", "feed-c.jsonl")
RUN_TIMEOUT = 240  # seconds for any one CLI run: a hang fails the test instead of stalling it
POLL = 0.01


# ---- the stages -------------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    rows: list[dict]
    anchors: list[str]  # one kill per anchor, in an order drawn by the seeded generator
    rebuild: bool = False


def shortened(row: dict) -> dict:
    """The row with its body cut to its first sentences (two or three chunks): the runs stay
    several seconds long with many articles, and the test stays within a few minutes."""
    body = row["body"]
    if len(body) > 1200:
        body = body[:1200].rsplit(". ", 1)[0] + "."
    return {**row, "body": body}


def corrected(row: dict, stage: str) -> dict:
    """The article with a correction put first: its hash changes and every chunk moves."""
    note = f"Correction ({stage}): an earlier version of this report gave a wrong date."
    return {**row, "body": f"{note}\n\n{row['body']}"}


def make_stages() -> list[Stage]:
    rows = [shortened(r) for r in corpus_rows(160)]
    a = rows[0:72]  # 72 new
    b = [corrected(r, "B") for r in rows[0:16]] + rows[16:112]  # 16 changed, 40 new
    c = b[48:112]  # rebuild onto 64 of them
    d = [corrected(r, "D") for r in c[0:8]] + c[8:] + rows[112:152]  # 8 changed, 40 new
    return [
        Stage("A", a, ["time", "write", "batch"]),
        Stage("B", b, ["time", "write", "end"]),
        Stage("C", c, ["time", "batch", "end"], rebuild=True),
        Stage("D", d, ["write", "batch"]),
    ]


def end_last(stage: Stage, order: list[str]) -> list[str]:
    """An index run killed after its last article row leaves nothing for a further kill of the
    stage, so there "end" comes last (a rebuild starts from scratch every time)."""
    if stage.rebuild or "end" not in order:
        return order
    return [a for a in order if a != "end"] + [a for a in order if a == "end"]


# ---- reading an index folder without opening it for writing -------------------------------


class Unreadable(Exception):
    """A database a read-only connection cannot read now, e.g. one with a hot rollback journal
    left by a process killed inside a transaction (the next writer rolls it back)."""


def query(db: Path, sql: str) -> list[tuple]:
    """Rows of `sql` in `db`, read-only (never creates the file); [] while it or its table is missing."""
    if not db.exists():
        return []
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError as exc:
        raise Unreadable(f"{db.name}: {exc}") from None
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # not created yet
            return []
        raise Unreadable(f"{db.name}: {exc}") from None
    finally:
        conn.close()


@dataclass
class Snapshot:
    """What one data folder holds, read from its SQLite files."""

    rows: dict[str, str]  # article id -> content hash
    lexical: dict[str, tuple[str, int, int]]  # chunk id -> (article id, start, end)
    records: set[str]  # record-manager keys
    unreadable: list[str]  # databases that could not be read (left mid-transaction)

    @classmethod
    def read(cls, data: Path | None) -> Snapshot:
        snap = cls({}, {}, set(), [])
        if data is None:
            return snap
        try:
            snap.rows = dict(query(data / "articles.sqlite", "SELECT id, content_hash FROM articles"))
        except Unreadable as exc:
            snap.unreadable.append(str(exc))
        try:
            sql = 'SELECT chunk_id, article_id, start, "end" FROM chunks'
            snap.lexical = {cid: (aid, start, end) for cid, aid, start, end in query(data / "lexical.sqlite", sql)}
        except Unreadable as exc:
            snap.unreadable.append(str(exc))
        try:
            snap.records = {k for (k,) in query(data / "records.sqlite", "SELECT key FROM upsertion_record")}
        except Unreadable as exc:
            snap.unreadable.append(str(exc))
        return snap

    def done(self, expected: dict[str, str]) -> int:
        """Articles whose row is at the version being indexed."""
        return sum(1 for aid, h in self.rows.items() if expected.get(aid) == h)


class Progress:
    """Cheap polling of a data folder: (articles at the new version, lexical (count, max rowid),
    manifest written), re-read from SQLite only when one of its files changed."""

    FILES = ("articles.sqlite", "articles.sqlite-wal", "lexical.sqlite", "lexical.sqlite-wal", "manifest.json")

    def __init__(self, expected: dict[str, str]):
        self.expected = expected
        self.key: tuple | None = None
        self.value: tuple[int, tuple[int, int], bool] = (0, (0, 0), False)

    def __call__(self, data: Path | None) -> tuple[int, tuple[int, int], bool]:
        if data is None:
            return 0, (0, 0), False
        key = (data, *(stat_key(data / name) for name in self.FILES))
        if key != self.key:
            try:
                rows = query(data / "articles.sqlite", "SELECT id, content_hash FROM articles")
                lex = query(data / "lexical.sqlite", "SELECT count(*), coalesce(max(rowid), 0) FROM chunks")
            except Unreadable:  # mid-write: look again at the next poll
                return self.value
            done = sum(1 for aid, h in rows if self.expected.get(aid) == h)
            self.key, self.value = key, (done, (lex[0] if lex else (0, 0)), (data / "manifest.json").exists())
        return self.value


def stat_key(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


def generations(index_dir: Path) -> set[Path]:
    return {p for p in index_dir.glob(f"{GENERATION_PREFIX}*") if p.is_dir()}


def live_dir(index_dir: Path) -> Path:
    return IndexFolder(index_dir).live()


# ---- the checks ----------------------------------------------------------------------------


def expected_spans(articles: list[Article], chunk_size: int, chunk_overlap: int) -> list[tuple[str, int, int]]:
    """The chunks of an uninterrupted run over `articles`: their sites' boilerplate lines
    (found over the run's articles, as the indexer does) left out of chunk edges."""
    skip = boilerplate_spans(articles)
    return sorted(
        (a.id, c.start, c.end)
        for a in articles
        for c in chunk_article(a, chunk_size, chunk_overlap, skip.get(a.id, ()))
    )


def check_index(index_dir: Path, articles: list[Article], what: str) -> dict[str, str]:
    """The live index holds exactly `articles`, consistently; returns its article hashes."""
    store = open_index(index_dir)
    try:
        dense = store.dense.get(include=[])["ids"]
        lexical = [cid for (cid,) in store.lexical._db.execute("SELECT chunk_id FROM chunks")]
        records = store.records.list_keys()
        hashes = store.articles.hashes()
        assert len(dense) == len(set(dense)), f"{what}: duplicate Chroma ids"
        assert len(lexical) == len(set(lexical)), f"{what}: duplicate lexical chunk ids"
        assert len(records) == len(set(records)), f"{what}: duplicate record-manager keys"
        assert store.hybrid.count() == len(dense), what
        assert set(dense) == set(lexical), (
            f"{what}: Chroma and the lexical index differ: {len(set(dense) - set(lexical))} only in "
            f"Chroma, {len(set(lexical) - set(dense))} only in the lexical index"
        )
        assert set(records) == set(lexical), (
            f"{what}: record manager and stores differ: {len(set(records) - set(lexical))} keys without "
            f"chunks, {len(set(lexical) - set(records))} chunks not recorded"
        )
        assert store.lexical.article_ids() == set(hashes), f"{what}: lexical article ids != article rows"
        assert store.articles.chunk_total() == len(dense), f"{what}: article chunk counts != chunks"
        chunks = store.lexical.get(lexical)
        counts = dict(store.articles._db.execute("SELECT id, chunk_count FROM articles"))
        per_article = Counter(row.article_id for row in chunks.values())
        assert counts == dict(per_article), f"{what}: an article row's chunk count is not its chunks'"
        assert hashes == {a.id: a.content_hash for a in articles}, (
            f"{what}: article rows differ from the input: missing "
            f"{sorted({a.id for a in articles} - set(hashes))[:5]}, extra "
            f"{sorted(set(hashes) - {a.id for a in articles})[:5]}, stale "
            f"{sorted(a.id for a in articles if hashes.get(a.id) not in (None, a.content_hash))[:5]}"
        )
        # Exactly the chunks an uninterrupted run makes, each once.
        spans = sorted((r.article_id, r.start, r.end) for r in chunks.values())
        assert spans == expected_spans(articles, store.chunk_size, store.chunk_overlap), (
            f"{what}: the stored chunks are not the ones an uninterrupted run makes"
        )
        vectors = store.lexical._db.execute("SELECT count(*) FROM sentence_vectors").fetchone()[0]
        assert vectors == len(lexical), f"{what}: {vectors} sentence-vector rows for {len(lexical)} chunks"
    finally:
        store.close()
    return hashes


def check_layout(index_dir: Path, what: str) -> None:
    """After a finished run: no half-built generation and no data left beside the live one."""
    live = live_dir(index_dir)
    assert generations(index_dir) == ({live} if live != index_dir else set()), (
        f"{what}: generation folders left: {sorted(p.name for p in generations(index_dir))}, live {live.name}"
    )
    if live != index_dir:
        left = [n for n in DATA_NAMES if (index_dir / n).exists()]
        assert not left, f"{what}: old-layout data left in the index folder: {left}"


# ---- running the CLI ------------------------------------------------------------------------


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ARTICLEQA), *args], capture_output=True, text=True, cwd=cwd, timeout=RUN_TIMEOUT, check=False
    )


@dataclass
class Kill:
    number: int
    stage: str
    rebuild: bool
    run: int  # 1: the stage's first run, then the re-runs continuing it
    anchor: str
    at: float = 0.0  # seconds after the start
    killed: bool = False
    total: int = 0
    done_before: int = 0
    done: int = 0  # articles at the stage's version in the target when killed
    rows: int = 0
    lexical: int = 0
    records: int = 0
    unrecorded: int = 0  # chunks in the lexical index the record manager does not know
    orphan_records: int = 0  # record keys whose chunks are gone from the lexical index
    target_exists: bool = True
    live_after: str = ""
    wrote: bool = False  # the lexical index or the record manager changed since the start
    notes: list[str] = field(default_factory=list)

    @property
    def mid(self) -> bool:
        return self.phase == "mid-indexing"

    @property
    def phase(self) -> str:
        if not self.killed:
            return "finished before the kill"
        if self.done == self.total:
            return "after the last article row"
        if self.done > self.done_before:
            return "mid-indexing"
        if self.wrote:
            return "chunks written, no article row of this run yet"
        return "before any write"

    def line(self) -> str:
        kind = "rebuild" if self.rebuild else "index"
        flags = [f"{self.unrecorded} unrecorded chunks"] if self.unrecorded else []
        flags += [f"{self.orphan_records} records without chunks"] if self.orphan_records else []
        flags += self.notes
        return (
            f"kill {self.number:2d} stage {self.stage} {kind} run {self.run} anchor {self.anchor:5s} "
            f"at {self.at:5.2f}s: {self.phase}; article rows {self.rows} ({self.done}/{self.total} at "
            f"this stage's version, {self.done_before} when started), lexical chunks {self.lexical}, "
            f"record keys {self.records}" + (f"; {', '.join(flags)}" if flags else "")
        )


class Estimate:
    """Seconds from a run's start to its first chunk write: the shortest seen so far (runs
    slowed down by a busy machine do not push later "time" kills past the end)."""

    def __init__(self, seconds: float = 8.0):
        self.seen: list[float] = []
        self.default = seconds

    @property
    def seconds(self) -> float:
        return min(self.seen) if self.seen else self.default

    def saw(self, seconds: float) -> None:
        self.seen.append(seconds)


def killed_run(
    args: list[str],
    cwd: Path,
    index_dir: Path,
    rebuild: bool,
    expected: dict[str, str],
    kill: Kill,
    draw: float,
    first_write: Estimate,
) -> None:
    """Start the CLI, wait for `kill.anchor` (+ a delay from `draw` in [0, 1)), SIGKILL it."""
    live = live_dir(index_dir) if index_dir.exists() else index_dir
    gens_before = generations(index_dir) if index_dir.exists() else set()

    found: list[Path] = []

    def target() -> Path | None:
        """The folder this run writes: the live data, or for a rebuild the generation it makes."""
        if not rebuild:
            return live
        if not found:
            found.extend(sorted(generations(index_dir) - gens_before - {live})[:1])
        return found[0] if found else None

    progress_of = Progress(expected)
    done0, lex0, _ = progress_of(None if rebuild else live)
    before = Snapshot.read(None if rebuild else live)
    kill.total = len(expected)
    kill.done_before = done0
    remaining = kill.total - done0
    anchor = kill.anchor
    if anchor == "batch" and remaining <= ARTICLES_PER_BATCH:
        anchor = "write"
    if anchor in {"write", "end"} and remaining == 0:
        anchor = "time"
    if anchor != kill.anchor:
        kill.notes.append(f"anchor {kill.anchor} -> {anchor} ({remaining} articles left)")
        kill.anchor = anchor
    delays = {
        "time": 0.5 + draw * (first_write.seconds - 0.5),
        "write": draw * 0.05,
        "batch": draw * 1.5,
        "end": draw * 0.5,
    }
    errors = cwd / f"kill-{kill.number}.stderr"
    with errors.open("w") as err:
        started = time.monotonic()
        proc = subprocess.Popen([str(ARTICLEQA), *args], stdout=subprocess.DEVNULL, stderr=err, cwd=cwd)
        fire = started + delays["time"] if anchor == "time" else None
        wrote = False
        try:
            while proc.poll() is None:
                now = time.monotonic()
                if now - started > RUN_TIMEOUT:
                    pytest.fail(f"kill {kill.number}: the run made no progress in {RUN_TIMEOUT}s")
                if fire is not None and now >= fire:
                    proc.send_signal(signal.SIGKILL)
                    kill.at = now - started
                    break
                done, lex, manifest = progress_of(target())
                if not wrote and manifest and lex != (lex0 if not rebuild else (0, 0)):
                    wrote = True
                    first_write.saw(now - started)
                    if anchor == "time" and fire is not None and fire > now + 0.3 * draw:
                        # This run writes sooner than the estimate: kill it in its first batch.
                        fire = now + 0.3 * draw
                        kill.notes.append("time capped at the run's first write")
                if fire is None:
                    reached = {
                        "write": wrote,
                        "batch": done >= done0 + ARTICLES_PER_BATCH,
                        "end": done >= kill.total,
                    }[anchor]
                    if reached:
                        fire = now + delays[anchor]
                time.sleep(max(0.0, min(POLL, (fire - now) if fire is not None else POLL)))
        finally:
            if proc.poll() is None and not kill.at:
                proc.kill()
            proc.wait(timeout=60)
    kill.killed = proc.returncode == -signal.SIGKILL  # not when it had just exited by itself
    if not kill.killed:
        assert proc.returncode == 0, f"kill {kill.number}: the run failed: {errors.read_text()[-3000:]}"
    data = target()
    kill.target_exists = data is not None and data.exists()
    snap = Snapshot.read(data if kill.target_exists else None)
    kill.rows, kill.done = len(snap.rows), snap.done(expected)
    kill.lexical, kill.records = len(snap.lexical), len(snap.records)
    if snap.unreadable:
        kill.notes.append(f"left mid-transaction, unreadable read-only: {'; '.join(snap.unreadable)}")
    else:
        kill.unrecorded = len(set(snap.lexical) - snap.records)
        kill.orphan_records = len(snap.records - set(snap.lexical))
    kill.live_after = live_dir(index_dir).name
    kill.wrote = (
        bool(snap.unreadable)
        or snap.lexical != before.lexical
        or (not before.unreadable and snap.records != before.records)
    )


# ---- the test ---------------------------------------------------------------------------


@pytest.mark.timeout(900)  # about 3 minutes on 2 busy cores; the default 600 s leaves too little margin
def test_kill9_at_random_moments_then_rerun_is_exact(tmp_path):
    started = time.monotonic()
    rng = random.Random(SEED)
    stages = make_stages()
    plan = [(stage, rng.sample(stage.anchors, len(stage.anchors))) for stage in stages]
    planned = sum(len(order) for _, order in plan)
    print("plan:", "; ".join(f"{stage.name} {' '.join(order)}" for stage, order in plan), flush=True)

    index_dir = tmp_path / "index"
    feeds = [tmp_path / name for name in FEEDS]
    first_write = Estimate()
    kills: list[Kill] = []
    log: list[str] = []

    def say(line: str) -> None:
        log.append(line)
        print(line, flush=True)

    def context() -> str:
        return "\n".join(log)

    previous: list[Article] = []
    carry: list[str] = []  # kills not made by an index stage that had no work left for them
    for stage, order in plan:
        third = -(-len(stage.rows) // len(feeds))
        for i, feed in enumerate(feeds):
            write_jsonl(feed, stage.rows[i * third : (i + 1) * third])
        articles = load_articles(feeds).articles
        assert len(articles) == len(stage.rows)
        expected = {a.id: a.content_hash for a in articles}
        args = ["index", *map(str, feeds), "--index-dir", str(index_dir), "--quiet"]
        if stage.rebuild:
            args.append("--rebuild")
        live_before = live_dir(index_dir) if index_dir.exists() else None
        old_hashes = {a.id: a.content_hash for a in previous}

        queue, carry = end_last(stage, carry + order), []
        while queue:
            anchor = queue.pop(0)
            number = len(kills) + 1
            run = sum(k.stage == stage.name for k in kills) + 1
            kill = Kill(number, stage.name, stage.rebuild, run, anchor)
            killed_run(args, tmp_path, index_dir, stage.rebuild, expected, kill, rng.random(), first_write)
            kills.append(kill)
            say(kill.line())
            if not kill.killed and number < planned + 4:
                queue = end_last(stage, [anchor, *queue])  # the run ended first: try this moment again
            if stage.rebuild:
                # The old index stays live and intact; only after the atomic switch is the new one live.
                what = f"kill {number} (rebuild)"
                if live_dir(index_dir) == live_before:
                    assert check_index(index_dir, previous, what) == old_hashes, context()
                else:
                    assert kill.done == kill.total, f"{what}: switched before the rebuild was complete\n{context()}"
                    check_index(index_dir, articles, what)
                    if kill.killed:
                        kill.notes.append("killed after the switch: the new index is live")
                        log[-1] = kill.line()
                    # The next run of this stage rebuilds again, beside this (complete) index.
                    live_before, previous, old_hashes = live_dir(index_dir), articles, expected
            elif kill.done == kill.total:
                carry = queue  # nothing is left to kill in this stage: kill later
                break

        done = cli(args, tmp_path)
        assert done.returncode == 0, f"stage {stage.name}: the re-run failed: {done.stderr[-3000:]}\n{context()}"
        what = f"stage {stage.name} after its kills and a re-run"
        check_index(index_dir, articles, what)
        check_layout(index_dir, what)
        again = cli(["index", *map(str, feeds), "--index-dir", str(index_dir), "--json"], tmp_path)
        assert again.returncode == 0, again.stderr[-3000:]
        summary = json.loads(again.stdout)["summary"]
        assert (summary["added"], summary["updated"], summary["chunks_added"]) == (0, 0, 0), (
            f"{what}: a further run still did work: {summary}\n{context()}"
        )
        assert summary["unchanged"] == len(articles) and summary["chunks_deleted"] == 0, summary
        say(f"stage {stage.name}: {len(articles)} articles, consistent; a further run added 0")
        previous = articles

    real = [k for k in kills if k.killed]
    say(f"{len(real)} kills, {time.monotonic() - started:.0f}s")
    assert len(real) >= 10, context()
    assert sum(k.rebuild for k in real) >= 2, context()
    assert len({k.rows for k in real}) >= 3, context()
    assert any(k.mid for k in real), f"no kill landed mid-indexing\n{context()}"
    assert len({k.phase for k in real}) >= 3, context()
