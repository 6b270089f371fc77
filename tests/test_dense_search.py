"""The same question finds the same neighbours in every process: Chroma's HNSW search keeps
enough candidates (`index.store.HNSW_EF_SEARCH`, in new and in older collections), and every
write session leaves the whole graph on disk (`HybridStore.save_vectors`), so no process
rebuilds part of it its own way."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from articleqa.index.store import HNSW_EF_SEARCH, chroma_client, open_collection
from articleqa.index.vectorstore import dense_store

pytestmark = pytest.mark.slow  # every test here loads the real model


def _ef_search(client, name: str) -> int:
    return client.get_collection(name).configuration_json["hnsw"]["ef_search"]


def test_new_collections_search_with_the_larger_ef(tmp_path, embeddings):
    client = chroma_client(tmp_path / "chroma")
    dense_store(client, "articles", embeddings)
    assert _ef_search(client, "articles") == HNSW_EF_SEARCH > 100
    # Opened without LangChain (what asking does), the collection is made the same way.
    plain = open_collection(client, "plain")
    assert plain.configuration_json == client.get_collection("articles").configuration_json
    assert plain.configuration_json["hnsw"]["space"] == "cosine"


def test_an_older_collection_is_raised_and_keeps_its_vectors(tmp_path, embeddings):
    client = chroma_client(tmp_path / "chroma")
    old = client.create_collection("articles", configuration={"hnsw": {"space": "cosine"}})
    assert old.configuration_json["hnsw"]["ef_search"] < HNSW_EF_SEARCH  # Chroma's default
    old.add(ids=["a", "b"], embeddings=[[1.0, 0.0], [0.0, 1.0]])
    dense_store(client, "articles", embeddings)
    assert _ef_search(client, "articles") == HNSW_EF_SEARCH
    assert client.get_collection("articles").count() == 2
    assert client.get_collection("articles").configuration_json["hnsw"]["space"] == "cosine"


_QUERY = """
import json, sys
import numpy as np
from pathlib import Path
from articleqa.index.store import chroma_client
collection = chroma_client(Path(sys.argv[1])).get_collection(sys.argv[2])
queries = np.load(sys.argv[3])
print(json.dumps(collection.query(query_embeddings=queries.tolist(), n_results=120, include=[])["ids"]))
"""


def graph_lag(chroma_dir: Path) -> int:
    """How many log entries Chroma's HNSW graph on disk is behind its metadata: what every
    process opening the folder inserts into the graph again. (Chroma's own bookkeeping, in
    its SQLite file: it has no public call for this.)"""
    with closing(sqlite3.connect(chroma_dir / "chroma.sqlite3")) as db:
        seen = dict(
            db.execute("SELECT s.scope, m.seq_id FROM max_seq_id m JOIN segments s ON s.id = m.segment_id").fetchall()
        )
    return seen["METADATA"] - seen.get("VECTOR", 0)


def test_an_indexing_run_leaves_the_whole_graph_on_disk(example_index):
    """1,844 chunks: without `save_vectors` the last 817 stay in Chroma's log (it writes the
    graph every 1,000 operations), and every process inserts them again, differently."""
    assert graph_lag(example_index / "chroma") == 0


def test_a_write_session_that_writes_nothing_saves_nothing(open_store):
    store = open_store()
    with store.write_session():
        store.hybrid.add_texts(["Ten firefighters fought the blaze."], ids=["c1"])
    chroma_dir = store.dir / "chroma"
    assert graph_lag(chroma_dir) == 0
    log = _log_entries(chroma_dir)
    with store.write_session():
        pass
    assert _log_entries(chroma_dir) == log  # no save marker written: the graph was saved already
    with store.write_session():
        store.hybrid.delete(["c1"])
    assert _log_entries(chroma_dir) > log and graph_lag(chroma_dir) == 0


def _log_entries(chroma_dir: Path) -> int:
    with closing(sqlite3.connect(chroma_dir / "chroma.sqlite3")) as db:
        return db.execute("SELECT max(seq_id) FROM embeddings_queue").fetchone()[0]


def test_the_same_question_finds_the_same_neighbours_after_a_restart(example_index, embeddings, tmp_path):
    """Our Wikinews training questions, 120 neighbours each (what the trainer's retrieval asks
    for), asked of the bundled articles' index by three fresh processes. At Chroma's default
    ef_search 24 of 60 questions differed somewhere between two processes (2026-11-27). At
    HNSW_EF_SEARCH, with the last 817 vectors left in Chroma's log, 1 to 4 of the 241 dense
    rankings retrieval makes for these questions still differed between any two of four
    processes (2026-11-28); with the graph saved, none."""
    import json
    import shutil

    from articleqa.index.store import IndexStore
    from tests.conftest import ROOT

    index = tmp_path / "index"
    shutil.copytree(example_index, index)
    store = IndexStore(index, embeddings, embedding_model="bundled:all-MiniLM-L6-v2")
    name = store.vectors.name  # opening raises an older ef_search
    store.close()
    lines = (ROOT / "training" / "data" / "own-wikinews.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in lines]
    np.save(tmp_path / "q.npy", np.asarray(embeddings.embed_documents(questions), dtype=np.float32))
    runs = [
        subprocess.run(
            [sys.executable, "-c", _QUERY, str(index / "chroma"), name, str(tmp_path / "q.npy")],
            capture_output=True,
            text=True,
        )
        for _ in range(3)
    ]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    first, *others = (json.loads(r.stdout) for r in runs)
    assert len(first) == len(questions) > 100
    for other in others:
        assert [i for i, (a, b) in enumerate(zip(first, other)) if a != b] == []


def test_a_filtered_search_by_the_allowed_ids_equals_the_where_clause(example_index, embeddings):
    """`IndexStore.nearest(..., within=ids)` (`index.store.nearest`): Chroma searches the chunks the lexical index says
    the clause allows instead of evaluating the clause (faster), with the same neighbours and
    distances; when an id is not in Chroma (a chunk being indexed or deleted by another
    process), the clause answers."""
    import json
    from datetime import date

    from articleqa.index.store import IndexStore
    from tests.conftest import ROOT

    store = IndexStore(example_index, embeddings, embedding_model="bundled:all-MiniLM-L6-v2")
    lexical = store.lexical
    lines = (ROOT / "tests" / "data" / "eval.jsonl").read_text(encoding="utf-8").splitlines()[:12]
    vectors = embeddings.embed_documents([json.loads(line)["question"] for line in lines])
    lo, hi = date(2020, 1, 1).toordinal(), date(2020, 6, 30).toordinal()
    some_articles = sorted(lexical.article_ids())[::20]
    filters = [
        ({"source": {"$in": ["Wikinews"]}}, {"sources": ["Wikinews"]}),
        ({"source": {"$in": ["RT"]}}, {"sources": ["RT"]}),
        (
            {"$and": [{"published_ord": {"$gte": lo}}, {"published_ord": {"$lte": hi}}]},
            {"published_from": lo, "published_to": hi},
        ),
        ({"article_id": {"$in": some_articles}}, {"article_ids": some_articles}),
    ]
    try:
        for where, allowed_by in filters:
            within = lexical.chunk_ids_where(**allowed_by)
            assert 0 < len(within) < lexical.count(), allowed_by
            for vector in vectors[:6]:
                expected = store.nearest(vector, 30, where)
                assert store.nearest(vector, 30, where, within=within) == expected, where
            # The ids are what Chroma searches: given half of them, it finds only those.
            half = set(within[::2])
            found = store.nearest(vectors[0], 30, where, within=sorted(half))
            assert found and {chunk_id for chunk_id, _ in found} <= half
        where, allowed_by = filters[0]
        within = lexical.chunk_ids_where(**allowed_by)
        for vector in vectors:
            expected = store.nearest(vector, 30, where)
            assert store.nearest(vector, 30, where, within=[*within, "not-in-chroma"]) == expected
        assert store.nearest(vectors[0], 30, {"source": {"$in": ["Nobody"]}}, within=[]) == []
        # The LangChain vector store searches the same way.
        assert store.hybrid.nearest(vectors[0], 30, where, within=within) == store.nearest(vectors[0], 30, where)
        assert lexical.chunk_ids_where(sources=["Nobody"]) == []
        assert len(lexical.chunk_ids_where()) == lexical.count()
    finally:
        store.close()
