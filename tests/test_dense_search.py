"""Chroma's HNSW search keeps enough candidates that the same question finds the same
neighbours every time (`index.store.HNSW_EF_SEARCH`), in new and in older collections."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from articleqa.index.store import HNSW_EF_SEARCH, chroma_client, dense_store

pytestmark = pytest.mark.slow  # every test here loads the real model


def _ef_search(client, name: str) -> int:
    return client.get_collection(name).configuration_json["hnsw"]["ef_search"]


def test_new_collections_search_with_the_larger_ef(tmp_path, embeddings):
    client = chroma_client(tmp_path / "chroma")
    dense_store(client, "articles", embeddings)
    assert _ef_search(client, "articles") == HNSW_EF_SEARCH > 100


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
print(json.dumps(collection.query(query_embeddings=queries.tolist(), n_results=90, include=[])["ids"]))
"""


def test_the_same_question_finds_the_same_neighbours_after_a_restart(example_index, embeddings, tmp_path):
    """60 of our training questions, 90 neighbours each (what retrieval asks for), asked of the
    bundled articles' index by two fresh processes. At Chroma's default ef_search 24 of 60
    differed somewhere between two processes (2026-11-27); at HNSW_EF_SEARCH none did, and
    HNSW stays approximate, so a margin of 2 is allowed."""
    import json
    import shutil

    from articleqa.index.store import IndexStore
    from tests.conftest import ROOT

    index = tmp_path / "index"
    shutil.copytree(example_index, index)
    store = IndexStore(index, embeddings, embedding_model="bundled:all-MiniLM-L6-v2")
    name = store.hybrid.chroma_collection().name  # opening raises an older ef_search
    store.close()
    lines = (ROOT / "training" / "data" / "own-wikinews.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in lines[:60]]
    np.save(tmp_path / "q.npy", np.asarray(embeddings.embed_documents(questions), dtype=np.float32))
    runs = [
        subprocess.run(
            [sys.executable, "-c", _QUERY, str(index / "chroma"), name, str(tmp_path / "q.npy")],
            capture_output=True,
            text=True,
        )
        for _ in range(2)
    ]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    first, second = (json.loads(r.stdout) for r in runs)
    assert sum(a != b for a, b in zip(first, second)) <= 2
