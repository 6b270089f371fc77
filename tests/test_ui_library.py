"""The web app's index side without a browser: rebuild, interrupted rebuild, progress."""

from __future__ import annotations

import pytest

from index import index_paths, open_index
from tests.conftest import SEED, SEED_ID, corpus_rows, write_jsonl
from ui.library import Library

pytestmark = pytest.mark.slow


@pytest.fixture
def library(tmp_path, embeddings):
    store = open_index(tmp_path / "index")
    index_paths(store, [SEED, write_jsonl(tmp_path / "rows.jsonl", corpus_rows(3))])
    store.close()
    lib = Library(tmp_path / "index")
    yield lib
    lib.close()


def test_rebuild_reembeds_every_stored_article_with_progress(library):
    before = {a.id: a.text for a in library.store.articles.list()}
    calls = []
    report = library.rebuild(progress=lambda phase, done, total: calls.append((phase, done, total)))
    assert sorted(report.added) == sorted(before)
    assert {a.id: a.text for a in library.store.articles.list()} == before
    assert library.store.dense_ids() == library.store.lexical.chunk_ids() == library.store.record_keys()
    assert calls[-1] == ("indexing", len(before), len(before))
    assert not library.backup_path.exists()
    answer = library.qa().ask("Who called the meeting a waste of time?")
    assert answer.grounded and answer.citations[0].article_id == SEED_ID


def test_interrupted_rebuild_is_finished_on_next_open(library, tmp_path):
    articles = library.store.articles.list()
    library.backup_path.write_text("".join(a.model_dump_json() + "\n" for a in articles), encoding="utf-8")
    library.store.reset()  # as if killed right after emptying the index
    library.close()
    reopened = Library(tmp_path / "index")
    try:
        assert sorted(a.id for a in reopened.store.articles.list()) == sorted(a.id for a in articles)
        assert not reopened.backup_path.exists()
        assert reopened.qa() is not None
    finally:
        reopened.close()


def test_statistics_say_how_the_embedding_model_runs(library):
    library.qa().ask("Who called the meeting a waste of time?")  # the model has run
    stats = library.stats()
    assert stats["articles"] == 4
    assert stats["embedding model"] == "bundled:all-MiniLM-L6-v2"
    assert stats["embedding backend"].startswith("OpenVINO (")
