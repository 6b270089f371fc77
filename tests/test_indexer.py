"""Indexing into a real Chroma (temp folder) with the real bundled model: semantics and safety."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from articleqa.index import IndexBusyError, index_paths, rebuild_index
from articleqa.index.store import IndexMismatchError, IndexStore, IndexStoreError
from tests.conftest import SEED, SEED_ID, WASTE_SENTENCE, corpus_rows, write_jsonl

pytestmark = pytest.mark.slow


def assert_consistent(store: IndexStore) -> None:
    """Chroma, the lexical index and the record manager hold exactly the same chunk ids, and
    every chunk belongs to a stored article whose chunk count matches."""
    dense, lexical, records = store.dense_ids(), store.lexical.chunk_ids(), store.record_keys()
    assert dense == lexical == records
    assert store.lexical.article_ids() == set(store.articles.hashes())
    assert store.articles.chunk_total() == len(dense)
    # Every chunk has its sentence vectors (the real model gives them), and only chunks do.
    stored = store.lexical.sentence_vectors(sorted(lexical))
    assert set(stored) == lexical
    assert store.lexical._db.execute("SELECT count(*) FROM sentence_vectors").fetchone()[0] == len(lexical)


def test_seed_article_is_found_by_similarity_search(open_store, tmp_path):
    store = open_store()
    report = index_paths(store, [SEED])
    assert report.added == [SEED_ID] and not report.failed
    hits = store.hybrid.similarity_search("waste of time", k=1)
    assert hits[0].metadata["article_id"] == SEED_ID
    assert WASTE_SENTENCE in hits[0].page_content
    meta = hits[0].metadata
    article = store.articles.get(SEED_ID)
    assert article.title == "Macron’s White House visit was a failure – Politico"
    assert article.source == "RT"
    assert article.text[meta["start"] : meta["end"]] == hits[0].page_content
    # Chroma keeps vectors and metadata only; the text is stored once, in the lexical index.
    assert store.dense.get(ids=[hits[0].id], include=["documents"])["documents"] == [None]
    lexical = store.lexical.search("Lavrov", k=3)
    assert lexical and store.lexical.get([lexical[0].chunk_id])[lexical[0].chunk_id].article_id == SEED_ID
    assert_consistent(store)


def test_second_run_embeds_nothing(open_store, counting, tmp_path):
    feed = write_jsonl(tmp_path / "feed.jsonl", corpus_rows(12))
    store = open_store()
    first = index_paths(store, [feed, SEED])
    assert len(first.added) == 13 and first.chunks_added > 13
    embedded = counting.documents_embedded
    assert embedded == first.chunks_added

    second = index_paths(store, [feed, SEED])
    assert counting.documents_embedded == embedded, "an unchanged re-run must embed nothing"
    assert second.added == second.updated == second.removed == []
    assert len(second.unchanged) == 13 and second.chunks_added == 0
    assert_consistent(store)


def test_changed_article_replaces_its_chunks_and_new_one_is_added(open_store, counting, tmp_path):
    rows = corpus_rows(6)
    feed = write_jsonl(tmp_path / "feed.jsonl", rows[:5])
    store = open_store()
    index_paths(store, [feed])
    before = store.lexical.chunk_ids_of(rows[0]["id"])

    rows[0] = {**rows[0], "body": rows[0]["body"] + "\n\nA correction was appended to this story on Friday."}
    write_jsonl(feed, rows)  # one changed, one new
    embedded = counting.documents_embedded
    report = index_paths(store, [feed])
    assert report.updated == [rows[0]["id"]]
    assert report.added == [rows[5]["id"]]
    assert len(report.unchanged) == 4
    after = store.lexical.chunk_ids_of(rows[0]["id"])
    assert after != before and report.chunks_deleted >= 1
    # Only the changed chunk(s) of the updated article and the new article were embedded.
    new_chunks = len(store.lexical.chunk_ids_of(rows[5]["id"]))
    assert counting.documents_embedded - embedded == report.chunks_added
    assert report.chunks_added <= new_chunks + len(after - before)
    assert "correction was appended" in store.articles.get(rows[0]["id"]).text
    hit = store.lexical.search("correction appended Friday", k=1)[0]
    assert hit.chunk_id in after
    assert_consistent(store)


def test_prune_removes_articles_whose_source_is_gone(open_store, tmp_path):
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "keep.txt").write_text("Kept headline\nThis article stays in the index.", encoding="utf-8")
    gone = folder / "gone.txt"
    gone.write_text("Gone headline\nThis article will be deleted from disk.", encoding="utf-8")
    store = open_store()
    index_paths(store, [folder])
    gone.unlink()

    without_prune = index_paths(store, [folder])
    assert without_prune.removed == [] and store.articles.get("gone") is not None

    pruned = index_paths(store, [folder], prune=True)
    assert pruned.removed == ["gone"]
    assert store.articles.get("gone") is None and store.articles.get("keep") is not None
    assert store.lexical.search("deleted disk", k=5) == []
    assert_consistent(store)


def test_prune_keeps_articles_of_an_input_that_failed(open_store, tmp_path):
    feed = write_jsonl(tmp_path / "feed.jsonl", corpus_rows(3))
    store = open_store()
    index_paths(store, [feed])
    feed.write_bytes(b"\xff\xfe not utf-8 \x00\x01")  # the file went bad
    report = index_paths(store, [feed], prune=True)
    assert report.failed and report.failed[0].origin == str(feed.resolve())
    assert report.removed == []
    assert store.articles.count() == 3
    assert_consistent(store)


def test_rebuild_starts_from_scratch_in_a_new_generation(open_store, counting, tmp_path):
    feed = write_jsonl(tmp_path / "feed.jsonl", corpus_rows(4))
    store = open_store()
    first = index_paths(store, [feed, SEED])
    old_dir = store.dir
    embedded = counting.documents_embedded
    rebuilt, store = rebuild_index(store, [feed])
    assert len(rebuilt.added) == 4 and rebuilt.unchanged == []
    assert counting.documents_embedded - embedded == rebuilt.chunks_added
    assert store.articles.get(SEED_ID) is None
    assert len(store.dense_ids()) == rebuilt.chunks_added < first.chunks_added
    assert_consistent(store)
    # The new data is live, in its own folder; the old data is gone.
    assert store.dir != old_dir and store.folder.live() == store.dir
    assert not (old_dir / "lexical.sqlite").exists()
    again, store = rebuild_index(store, [feed])  # generation to generation
    assert len(again.added) == 4 and store.folder.live() == store.dir
    assert [p.name for p in store.root.glob("gen-*")] == [store.dir.name]
    store.close()


def test_rebuild_with_a_failing_input_keeps_the_old_index(open_store, tmp_path):
    feed = write_jsonl(tmp_path / "feed.jsonl", corpus_rows(3))
    store = open_store()
    index_paths(store, [feed, SEED])
    before = set(store.articles.hashes())
    report, same = rebuild_index(store, [feed, tmp_path / "typo-in-the-path"])
    assert same is store and store.folder.live() == store.dir
    assert "rebuild abandoned" in report.notes[0] and report.failed
    assert set(store.articles.hashes()) == before
    assert not list(store.root.glob("gen-*"))
    assert_consistent(store)


def test_interrupted_rebuild_leaves_the_old_index_and_no_leftovers(open_store, tmp_path, monkeypatch):
    feed = write_jsonl(tmp_path / "feed.jsonl", corpus_rows(3))
    store = open_store()
    index_paths(store, [feed, SEED])
    before = set(store.articles.hashes())
    import articleqa.index.indexer as indexer

    def interrupted(self, articles, *, report, force=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(indexer.Indexer, "index_articles", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rebuild_index(store, [feed])
    monkeypatch.undo()
    assert store.folder.live() == store.dir and set(store.articles.hashes()) == before
    assert not list(store.root.glob("gen-*"))
    # A generation left by a killed rebuild is removed by the next writer.
    leftover = store.folder.new_generation()
    index_paths(store, [feed])
    assert not leftover.exists()
    assert_consistent(store)


def test_prune_is_skipped_on_a_run_where_an_input_failed(open_store, tmp_path):
    feed = write_jsonl(tmp_path / "feed.jsonl", corpus_rows(3))
    store = open_store()
    index_paths(store, [feed, SEED])
    report = index_paths(store, [feed, tmp_path / "missing.txt"], prune=True)
    assert report.removed == [] and "nothing was pruned" in report.notes[0]
    assert store.articles.get(SEED_ID) is not None
    report = index_paths(store, [feed], prune=True)
    assert report.removed == [SEED_ID] and not report.notes


def test_one_writer_at_a_time_across_processes(open_store, tmp_path):
    store = open_store()
    index_paths(store, [SEED])
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(store.root)], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(IndexBusyError, match="another process is writing"):
            index_paths(store, [SEED], wait=0.2)
        waited = []

        def release() -> None:
            holder.stdin.write("go\n")
            holder.stdin.flush()

        threading.Timer(0.5, release).start()
        report = index_paths(store, [SEED], on_wait=lambda: waited.append(True))
        assert waited == [True] and report.unchanged == [SEED_ID]
    finally:
        holder.kill()
        holder.wait()


HOLD_LOCK = """
import sys
from articleqa.index.folder import IndexFolder
with IndexFolder(sys.argv[1]).writing(wait=0):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_bad_inputs_are_named_and_the_rest_is_indexed(open_store, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.txt").write_text("Good headline\nA perfectly fine article body.", encoding="utf-8")
    (folder / "empty.txt").write_text("", encoding="utf-8")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    (folder / "latin1.md").write_bytes("Caf\xe9 headline\nBody".encode("latin-1"))
    (folder / "page.html").write_text(
        "<html><head><title>Empty</title></head><body><script>x=1</script></body></html>",
        encoding="utf-8",
    )
    lines = [
        json.dumps({"title": "Fine", "body": "A fine JSON line article."}),
        "{not json",
        json.dumps({"title": "No body"}),
    ]
    (folder / "feed.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    store = open_store()
    report = index_paths(store, [folder, tmp_path / "missing.txt", tmp_path / "doc.pdf"])
    reasons = {(Path(f.origin).name, f.reason.split(":")[0]) for f in report.failed}
    names = {name for name, _ in reasons}
    assert {"empty.txt", "binary.txt", "latin1.md", "page.html", "feed.jsonl", "missing.txt", "doc.pdf"} <= names
    assert sorted(report.added) == ["feed:1", "good"]
    assert any("line 2" in f.reason for f in report.failed)
    assert any("line 3" in f.reason and "body" in f.reason for f in report.failed)
    assert_consistent(store)


def test_other_embedding_model_is_refused_with_advice(open_store, counting, tmp_path):
    store = open_store()
    index_paths(store, [SEED])
    store.close()
    with pytest.raises(IndexMismatchError, match="rebuild"):
        IndexStore(tmp_path / "index", counting, embedding_model="/some/other-model")
    # Opened for a rebuild with the new model: the old data is replaced, not read.
    reopened = IndexStore(tmp_path / "index", counting, embedding_model="/some/other-model", check_model=False)
    report, rebuilt = rebuild_index(reopened, [SEED])
    assert report.added == [SEED_ID] and rebuilt.manifest.embedding_model == "/some/other-model"
    rebuilt.close()


def test_changed_chunking_rechunks_unchanged_articles(open_store, tmp_path):
    store = open_store()
    index_paths(store, [SEED])
    n_before = len(store.dense_ids())
    store.close()
    smaller = open_store(chunk_size=300, chunk_overlap=50)
    report = index_paths(smaller, [SEED])
    assert report.unchanged == [SEED_ID]
    assert len(smaller.dense_ids()) > n_before
    assert_consistent(smaller)
    assert smaller.manifest.chunk_size == 300


def test_chroma_default_embedder_is_never_called(open_store, monkeypatch, tmp_path):
    """Chroma's built-in embedder downloads an ONNX model: it must never run."""
    from chromadb.utils.embedding_functions import onnx_mini_lm_l6_v2 as onnx

    def boom(*args, **kwargs):
        raise AssertionError("Chroma's default (downloading) embedder was called")

    monkeypatch.setattr(onnx.ONNXMiniLM_L6_V2, "__call__", boom)
    monkeypatch.setattr(onnx.ONNXMiniLM_L6_V2, "_download_model_if_not_exists", boom)
    store = open_store()
    index_paths(store, [SEED])
    assert store.hybrid.similarity_search("peacekeepers", k=1)


def test_sentence_vectors_match_the_answerers_sentence_split(open_store):
    from articleqa.index.chunking import split_sentences

    store = open_store()
    index_paths(store, [SEED])
    rows = store.lexical.get(sorted(store.lexical.chunk_ids()))
    stored = store.lexical.sentence_vectors(list(rows))
    for chunk_id, row in rows.items():
        spans = [(s.start, s.end) for s in split_sentences(row.text)]
        assert [tuple(x) for x in stored[chunk_id].spans.tolist()] == spans
        assert stored[chunk_id].vectors.shape == (len(spans), 384)


def test_embeddings_without_span_vectors_still_index(embeddings, tmp_path):
    """Any LangChain Embeddings works: chunks are indexed, the answerer encodes at question time."""
    from langchain_core.embeddings import Embeddings

    from articleqa.qa import ArticleQA

    class Plain(Embeddings):
        def embed_documents(self, texts):
            return embeddings.embed_documents(texts)

        def embed_query(self, text):
            return embeddings.embed_query(text)

    store = IndexStore(tmp_path / "plain", Plain(), embedding_model="bundled:all-MiniLM-L6-v2")
    index_paths(store, [SEED])
    assert store.lexical.sentence_vectors(sorted(store.lexical.chunk_ids())) == {}
    assert store.hybrid.similarity_search("waste of time", k=1)[0].metadata["article_id"] == SEED_ID
    store.close()
    with ArticleQA.open(tmp_path / "plain") as qa:
        answer = qa.ask("Who called the meeting a waste of time?")
    assert answer.grounded and answer.citations[0].quote == WASTE_SENTENCE


def test_a_damaged_current_file_is_a_clear_error(open_store, tmp_path):
    store = open_store()
    index_paths(store, [SEED])
    store.close()
    (tmp_path / "index" / "CURRENT").write_text("../elsewhere\n", encoding="utf-8")
    with pytest.raises(IndexStoreError, match="not a generation folder"):
        open_store()


def test_every_sqlite_file_is_in_wal_mode(open_store):
    """Readers never block the writer, and a killed writer leaves no hot rollback journal."""
    import sqlite3

    store = open_store()
    index_paths(store, [SEED])
    for name in ("lexical.sqlite", "articles.sqlite", "records.sqlite"):
        with sqlite3.connect(store.dir / name) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal", name
