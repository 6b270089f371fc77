"""The web app's index side without a browser: rebuild, uploads, leases, other processes' writes.

Writes by another process are made by real `articleqa index` processes on the same folder.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from articleqa.index import IndexBusyError, index_paths, open_index
from articleqa.ui.library import Library, safe_upload_name
from tests.conftest import (
    BRIDGE,
    BRIDGE_Q,
    SEED,
    SEED_ID,
    WASTE_Q,
    corpus_rows,
    write_jsonl,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def library(tmp_path, embeddings):
    store = open_index(tmp_path / "index")
    index_paths(store, [SEED, write_jsonl(tmp_path / "rows.jsonl", corpus_rows(3))])
    store.close()
    lib = Library(tmp_path / "index")
    yield lib
    lib.close()


def consistent(store) -> bool:
    return store.dense_ids() == store.lexical.chunk_ids() == store.record_keys()


def test_rebuild_reembeds_every_stored_article_into_a_new_generation(library):
    before = {a.id: a.text for a in library.store.articles.list()}
    old_dir = library.store.dir
    calls = []
    report = library.rebuild(progress=lambda phase, done, total: calls.append((phase, done, total)))
    assert sorted(report.added) == sorted(before)
    assert {a.id: a.text for a in library.store.articles.list()} == before
    assert consistent(library.store)
    assert calls[-1] == ("indexing", len(before), len(before))
    assert library.store.dir != old_dir and library.store.folder.live() == library.store.dir
    answer = library.qa().ask(WASTE_Q)
    assert answer.grounded and answer.citations[0].article_id == SEED_ID


def test_questions_are_answered_from_the_old_index_while_a_rebuild_runs(library, monkeypatch):
    """The lease taken before the rebuild keeps its ArticleQA open; a failed rebuild changes nothing."""
    import articleqa.index.indexer as indexer

    real = indexer.Indexer.index_articles
    answers = []

    def slow_then_fail(self, articles, *, report, force=False):
        with library.session() as qa:  # a question while the new index is being built
            answers.append(qa.ask(WASTE_Q))
        real(self, articles[:1], report=report, force=force)
        raise RuntimeError("disk full")

    monkeypatch.setattr(indexer.Indexer, "index_articles", slow_then_fail)
    live = library.store.dir
    with pytest.raises(RuntimeError, match="disk full"):
        library.rebuild()
    assert answers and answers[0].grounded
    assert library.store.folder.live() == live and not list(library.index_dir.glob("gen-*"))
    assert library.qa().ask(WASTE_Q).citations[0].article_id == SEED_ID


def test_a_session_outlives_a_write_and_is_closed_after_it(library, tmp_path):
    with library.session() as qa:
        library.add([_file(tmp_path, "bridge.txt", BRIDGE)], [])
        assert qa.ask(WASTE_Q).grounded  # still open although replaced
        assert library.qa() is not qa
    with pytest.raises(Exception):  # noqa: B017 - whatever the closed store's backend raises
        qa.ask(WASTE_Q)  # closed once its last question finished
    assert library.qa().ask(BRIDGE_Q).citations[0].article_id == "bridge"


def test_an_upload_never_replaces_an_article_unless_asked(library, tmp_path):
    first = library.add([_file(tmp_path / "a", "story.txt", BRIDGE)], [])
    assert first.added == ["story"]
    second = library.add([_file(tmp_path / "b", "story.txt", "Other headline\n\nOther text about a ferry.")], [])
    assert second.added == [] and "already indexed" in second.failed[0].reason
    assert "Zorvath" in library.get_article("story").text
    third = library.add(
        [_file(tmp_path / "c", "story.txt", "Other headline\n\nOther text about a ferry.")], [], replace=True
    )
    assert third.updated == ["story"] and "ferry" in library.get_article("story").text


def test_a_replacement_that_cannot_be_read_keeps_the_earlier_upload(library, tmp_path):
    library.add([_file(tmp_path / "a", "story.txt", BRIDGE)], [])
    report = library.add([_file(tmp_path / "b", "story.txt", "")], [], replace=True)
    assert report.failed and "Zorvath" in (library.uploads_dir / "story.txt").read_text(encoding="utf-8")
    # Named as the visitor knows it, not by its path on the server.
    assert report.failed[0].origin == "uploads/story.txt"
    assert str(library.index_dir) not in report.model_dump_json()
    assert "Zorvath" in library.get_article("story").text


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\evil.md", "evil.md"),
        ("two\nlines.txt", "two-lines.txt"),
        (".hidden.txt", "hidden.txt"),
        ("café report.TXT", "caf- report.txt"),
    ],
)
def test_upload_names_are_made_safe(given, stored):
    assert safe_upload_name(given) == stored


def test_uploads_with_unusable_names_or_over_the_size_cap_are_refused(library, tmp_path):
    from articleqa.index.sources import FetchPolicy

    library.fetch = FetchPolicy(max_bytes=100)
    big = _file(tmp_path, "big.txt", "Headline\n\n" + "word " * 100)
    nameless = _file(tmp_path, "x.txt", BRIDGE)
    report = library.add([big, nameless], [], names=["big.txt", "../...txt"])
    reasons = {f.origin: f.reason for f in report.failed}
    assert "over the limit of 100 bytes" in reasons["big.txt"]
    assert "not a usable file name" in reasons["../...txt"]
    assert not library.uploads_dir.exists() or not any(library.uploads_dir.iterdir())


def test_fifty_uploads_leave_the_open_file_count_flat(library, tmp_path):
    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    library.add([_file(tmp_path, "warmup.txt", BRIDGE.replace("Zorvath", "Warmup"))], [])
    library.qa().ask(BRIDGE_Q)
    start = open_files()
    for i in range(50):
        library.add([_file(tmp_path, f"story-{i}.txt", BRIDGE.replace("Zorvath", f"Bridge{i}x"))], [])
        with library.session() as qa:
            qa.ask(BRIDGE_Q)
    assert open_files() <= start + 4, (start, open_files())
    assert library.store.articles.count() == 4 + 1 + 50


def test_a_write_while_another_process_writes_is_refused_with_a_reason(library, tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(library.index_dir)],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(IndexBusyError, match="another process is writing"):
            library.add([_file(tmp_path, "bridge.txt", BRIDGE)], [])
        assert library.qa().ask(WASTE_Q).grounded  # questions go on
    finally:
        holder.kill()
        holder.wait()
    assert library.add([_file(tmp_path, "bridge.txt", BRIDGE)], []).added == ["bridge"]


def test_articles_indexed_by_another_process_are_answered_without_a_restart(library, tmp_path):
    """A real `articleqa index` adds articles and then rebuilds, while this process keeps asking."""
    assert not library.qa().ask(BRIDGE_Q).grounded
    errors: list[BaseException] = []
    stop = threading.Event()

    def ask_forever() -> None:
        while not stop.is_set():
            try:
                with library.session() as qa:
                    assert qa.ask(WASTE_Q).citations[0].article_id == SEED_ID
            except BaseException as exc:  # noqa: BLE001 -- collected and asserted below
                errors.append(exc)
                return

    askers = [threading.Thread(target=ask_forever) for _ in range(2)]
    for t in askers:
        t.start()
    try:
        bridge = _file(tmp_path / "new", "zorvath-bridge.txt", BRIDGE)
        rows = write_jsonl(tmp_path / "more.jsonl", corpus_rows(12)[3:])
        _articleqa("index", str(bridge), str(rows), "--index-dir", str(library.index_dir))
        answer = library.qa().ask(BRIDGE_Q)
        assert answer.grounded and answer.citations[0].article_id == "zorvath-bridge"
        # The vectors too, not only the lexical index: Chroma was read afresh.
        assert dense_top(library) == "zorvath-bridge"
        # A rebuild by another process switches generations; the questions follow.
        _articleqa("index", str(SEED), str(bridge), "--rebuild", "--index-dir", str(library.index_dir))
        assert library.qa().ask(BRIDGE_Q).citations[0].article_id == "zorvath-bridge"
        assert library.store.articles.count() == 2 and consistent(library.store)
    finally:
        stop.set()
        for t in askers:
            t.join(timeout=60)
    assert errors == []
    # And the web app's own writes go on top of the other process's, not over them.
    report = library.add(
        [_file(tmp_path, "ferry.txt", "Ferry strike ends\n\nThe ferry strike in Brest ended on Friday.")], []
    )
    assert report.added == ["ferry"] and consistent(library.store)
    assert library.qa().ask(BRIDGE_Q).citations[0].article_id == "zorvath-bridge"
    assert dense_top(library) == "zorvath-bridge"


def dense_top(library: Library) -> str:
    """The article of the chunk nearest to the bridge question by vector alone."""
    with library.session() as qa:
        return qa.store.hybrid.similarity_search(BRIDGE_Q, k=1)[0].metadata["article_id"]


def test_statistics_say_how_the_embedding_model_runs_and_show_no_paths(library):
    library.qa().ask(WASTE_Q)  # the model has run
    stats = library.stats()
    assert stats["articles"] == 4
    assert stats["embedding model"] == "bundled:all-MiniLM-L6-v2"
    assert re.match(r"OpenVINO, (fp32|bf16|int8) \(", stats["embedding backend"]), stats["embedding backend"]
    assert not any(str(library.index_dir) in str(v) for v in stats.values())


def test_date_range_is_the_indexed_articles_own(library):
    first, last = library.date_range()
    dates = [a.published_at for a in library.store.articles.list() if a.published_at]
    assert (first, last) == (min(dates), max(dates))


HOLD_LOCK = """
import sys
from articleqa.index.folder import IndexFolder
with IndexFolder(sys.argv[1]).writing(wait=0):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def _file(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _articleqa(*args: str) -> None:
    script = Path(sys.executable).with_name("articleqa")
    result = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_an_abandoned_question_does_not_hold_up_the_reopen_for_ever(library, monkeypatch):
    import articleqa.ui.library as module

    monkeypatch.setattr(module, "DRAIN_GRACE_S", 0.5)
    library.options = dataclasses.replace(library.options, llm_timeout=0.0)
    abandoned = library.session()
    held = abandoned.__enter__()  # a question that never finishes (its generator was dropped)
    assert held is not None
    library.store.folder.touch()  # as another process's write does
    fresh = library.qa()  # waits 0.5 s for the abandoned lease, then reopens
    assert fresh is not held and fresh.ask(WASTE_Q).citations[0].article_id == SEED_ID
