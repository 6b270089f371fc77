"""Web replicas in server mode: two real `articleqa serve` processes, each with its own (empty)
index folder as two machines would have, share one index in a `chroma run` server and
PostgreSQL (issue 12). Both answer the same question with the same citation while they are
asked at once, and both answer from an article that a third process indexed meanwhile, without
a restart: they notice the other writer through the database's change token. And a replica's
"Prune" (articles whose file is gone) refuses to run on the shared index, whose files lie on
other machines."""

from __future__ import annotations

import threading

import pytest

from articleqa.index import IndexStore, index_paths
from articleqa.index.folder import IndexStoreError
from articleqa.qa.options import QAOptions
from articleqa.ui.library import Library
from bench.load import HttpUser, free_port, start_serve, stop_serve, wait_until_up
from tests.conftest import BRIDGE, BRIDGE_Q, SEED, SEED_ID, WASTE_Q, WASTE_SENTENCE
from tests.test_serve_while_indexing import articleqa, ask_once

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # PostgreSQL, `chroma run`, two `serve`
MODEL = "bundled:all-MiniLM-L6-v2"


def citation_key(answer: dict) -> list[tuple]:
    return [(c["article_id"], c["start"], c["end"], c["quote"]) for c in answer["citations"]]


@pytest.mark.timeout(600)
def test_two_serve_replicas_share_one_index_and_follow_another_writer(
    chroma_server, database_url, tmp_path, monkeypatch
):
    # The settings as environment variables, as a replica's service file would set them; the
    # `serve` processes inherit them. Each process has its own folder: nothing is shared there.
    monkeypatch.setenv("ARTICLEQA_CHROMA_URL", chroma_server)
    monkeypatch.setenv("ARTICLEQA_DATABASE_URL", database_url)
    articleqa("index", str(SEED), "--index-dir", str(tmp_path / "indexer-1"))
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}/" for port in ports]
    logs = [tmp_path / f"serve-{n}.log" for n in range(2)]
    procs = [start_serve(tmp_path / f"replica-{n}", port, log) for n, (port, log) in enumerate(zip(ports, logs))]
    errors: list[str] = []
    answered = [0, 0]
    stop = threading.Event()

    def keep_asking(n: int) -> None:
        user = HttpUser(urls[n])
        try:
            while not stop.is_set():
                try:
                    cited = [c["article_id"] for c in user.ask(WASTE_Q)["citations"]]
                    if cited[:1] == [SEED_ID]:
                        answered[n] += 1
                    else:
                        errors.append(f"replica {n} cited {cited}")
                except Exception as exc:  # noqa: BLE001 -- collected and asserted below
                    errors.append(f"replica {n}: {type(exc).__name__}: {exc}")
        finally:
            user.close()

    askers: list[threading.Thread] = []
    try:
        for url, proc, log in zip(urls, procs, logs):
            wait_until_up(url, proc, log)
        first = [ask_once(url, WASTE_Q) for url in urls]
        assert first[0]["grounded"] and first[0]["citations"][0]["quote"] == WASTE_SENTENCE
        assert citation_key(first[0]) == citation_key(first[1])
        assert not any(ask_once(url, BRIDGE_Q)["grounded"] for url in urls)

        askers = [threading.Thread(target=keep_asking, args=(n,)) for n in range(2)]
        for t in askers:
            t.start()
        bridge = tmp_path / "new" / "zorvath-bridge.txt"
        bridge.parent.mkdir()
        bridge.write_text(BRIDGE, encoding="utf-8")
        articleqa("index", str(bridge), "--index-dir", str(tmp_path / "indexer-2"))  # another machine
        after = [ask_once(url, BRIDGE_Q) for url in urls]
    finally:
        stop.set()
        for t in askers:
            t.join(timeout=120)
        for proc in procs:
            stop_serve(proc)
    for answer in after:
        assert answer["grounded"] and answer["citations"][0]["article_id"] == "zorvath-bridge"
    assert citation_key(after[0]) == citation_key(after[1])
    assert errors == [], errors[:5]
    assert min(answered) > 0  # both replicas answered while the other process was indexing
    kept = [p.name for n in range(2) for p in (tmp_path / f"replica-{n}").rglob("*") if p.is_file()]
    assert not any(name.endswith(".sqlite") or name == "manifest.json" for name in kept), kept


def test_a_replica_never_prunes_articles_whose_files_are_on_other_machines(database_url, tmp_path, embeddings):
    """The web app's prune removes articles whose file is gone. In a shared index the files lie
    on the machines that indexed them, which a replica cannot see: it must refuse, and remove
    nothing, rather than take the whole index for deleted files."""
    elsewhere = tmp_path / "indexer-machine" / "bridge.txt"  # a path that exists on that machine only
    elsewhere.parent.mkdir()
    elsewhere.write_text(BRIDGE, encoding="utf-8")
    writer = IndexStore(tmp_path / "indexer", embeddings, embedding_model=MODEL, database_url=database_url)
    try:
        index_paths(writer, [SEED, elsewhere])
    finally:
        writer.close()
    elsewhere.unlink()  # as seen from the replica's machine
    library = Library(tmp_path / "replica", QAOptions(database_url=database_url))
    try:
        with pytest.raises(IndexStoreError, match=r"articleqa index .* --prune"):
            library.prune()
        assert library.stats()["articles"] == 2
    finally:
        library.close()
