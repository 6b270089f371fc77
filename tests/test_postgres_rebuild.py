"""`--rebuild` of an index kept in PostgreSQL: generations are schemas (`index.database`).

Against a real server (and a real `chroma run` where named), with the real model: a rebuild
switches to a new schema and answers as before, readers on other machines follow the switch,
a rebuild that fails or is killed leaves the live index answering (the next writer drops what a
killed one left), the old Chroma collection is deleted, and an index made before generations
(its tables in the database's own schema) moves into one.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time

import chromadb
import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from articleqa.index import index_paths, rebuild_index
from articleqa.index.database import SCHEMA_PREFIX, Database, DatabaseFolder
from articleqa.index.folder import IndexStoreError
from articleqa.index.store import IndexStore, read_manifest
from articleqa.index.subscriptions import SubscriptionStore
from articleqa.qa.api import ArticleQA
from articleqa.qa.options import QAOptions
from articleqa.ui.cli import app
from articleqa.ui.library import Library
from tests.conftest import BRIDGE, BRIDGE_Q, SEED, SEED_ID, WASTE_Q, WASTE_SENTENCE

pytestmark = pytest.mark.integration  # a PostgreSQL server on 127.0.0.1
runner = CliRunner()
MODEL = "bundled:all-MiniLM-L6-v2"
# The index's own tables (what a generation's schema holds; the root keeps its meta table).
INDEX_TABLES = {
    "articleqa_articles",
    "articleqa_chunks",
    "articleqa_sentence_vectors",
    "articleqa_lexemes",
    "articleqa_lexical_stats",
    "articleqa_postings",
    "upsertion_record",
}


def cli(*args: str):
    return runner.invoke(app, list(args), env={})


def query(url: str, sql: str, **params) -> list[tuple]:
    """Rows of `sql`, read on a connection of its own (in the database's own schema)."""
    engine = create_engine(url)
    try:
        with engine.connect() as db:
            return [tuple(row) for row in db.execute(text(sql), params)]
    finally:
        engine.dispose()


def execute(url: str, sql: str) -> None:
    """Run `sql` in a transaction of its own, committed."""
    engine = create_engine(url)
    try:
        with engine.begin() as db:
            db.execute(text(sql))
    finally:
        engine.dispose()


def generation_schemas(url: str) -> set[str]:
    rows = query(url, "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, :prefix)", prefix=SCHEMA_PREFIX)
    return {name for (name,) in rows}


def tables_in(url: str, schema: str) -> set[str]:
    return {name for (name,) in query(url, "SELECT tablename FROM pg_tables WHERE schemaname = :s", s=schema)}


def root_meta(url: str) -> dict[str, str]:
    return dict(query(url, "SELECT key, value FROM articleqa_meta"))


def citation(answer) -> tuple:
    first = answer.citations[0]
    return first.article_id, first.start, first.end, first.quote


def assert_answers_the_seed_question(store: IndexStore) -> tuple:
    answer = ArticleQA(store).ask(WASTE_Q)
    assert answer.grounded and answer.citations[0].quote == WASTE_SENTENCE
    return citation(answer)


# ---- no model (a real server from the second test on) ---------------------------------------


def test_a_generation_schema_name_is_checked_before_it_reaches_sql():
    with pytest.raises(ValueError, match=r"schema name 'x; DROP TABLE y' is not valid: lower-case letters"):
        Database("postgresql://u@127.0.0.1:1/d", "test", schema="x; DROP TABLE y")


def test_only_the_generations_this_index_made_are_dropped(database_url, tmp_path):
    """A killed rebuild's schema (recorded in the root's meta table) is dropped by the next
    writer; a schema of the same form that this index never made is left alone."""
    folder = DatabaseFolder(tmp_path / "ix", Database(database_url, "test"))
    try:
        foreign = f"{SCHEMA_PREFIX}20200101t000000_abcdef"
        execute(database_url, f"CREATE SCHEMA {foreign}")
        left = folder.new_generation()
        assert left.parent == folder.root and left.name.startswith(SCHEMA_PREFIX) and not left.exists()
        assert generation_schemas(database_url) == {foreign, left.name}
        assert folder.live() == folder.root  # not live until a switch
        with folder.writing():
            pass
        assert generation_schemas(database_url) == {foreign}
        assert not any(key.startswith("generation:") for key in root_meta(database_url))
        with pytest.raises(ValueError, match=r"is not a generation of the index in postgresql.*expected"):
            folder.switch(tmp_path / "elsewhere" / left.name)
        with pytest.raises(ValueError, match="no schema"):
            folder.switch(left)  # dropped
    finally:
        folder.database.dispose()


def test_two_indexes_in_two_schemas_of_one_database_keep_their_generations_apart(database_url, tmp_path):
    """The documented way to keep two indexes in one database (a search path in the URL): each
    has its own pointer and records its own generations, so a writer of one never drops the
    other's."""
    execute(database_url, "CREATE SCHEMA other")
    first = DatabaseFolder(tmp_path / "one", Database(database_url, "one"))
    second = DatabaseFolder(tmp_path / "two", Database(f"{database_url}?options=-csearch_path%3Dother", "two"))
    try:
        building = first.new_generation()
        first.switch(building)
        assert second.live() == second.root and first.live() == building
        with second.writing():
            pass
        assert generation_schemas(database_url) == {building.name}
        assert "live" not in dict(query(database_url, "SELECT key, value FROM other.articleqa_meta"))
    finally:
        first.database.dispose()
        second.database.dispose()


def test_a_pointer_to_a_missing_schema_is_a_clear_error(database_url, tmp_path):
    database = Database(database_url, "test")
    try:
        database.set_meta("live", f"{SCHEMA_PREFIX}20200101t000000_abcdef")
        with pytest.raises(IndexStoreError, match=r"names 'articleqa_gen_20200101t000000_abcdef' as its live index"):
            DatabaseFolder(tmp_path, database).live()
    finally:
        database.dispose()


# ---- with the model --------------------------------------------------------------------------


@pytest.mark.slow
def test_rebuild_through_the_cli_switches_to_a_new_schema(database_url, tmp_path):
    where = ["--index-dir", str(tmp_path / "ix"), "--database-url", database_url]
    assert cli("index", str(SEED), *where, "--quiet").exit_code == 0
    before = json.loads(cli("ask", WASTE_Q, *where, "--json").stdout)

    rebuilt = cli("index", str(SEED), "--rebuild", *where, "--json")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert json.loads(rebuilt.stdout)["added"] == [SEED_ID]
    first = root_meta(database_url)["live"]
    assert generation_schemas(database_url) == {first}
    assert tables_in(database_url, first) >= INDEX_TABLES
    assert tables_in(database_url, "public") == {"articleqa_meta"}  # the root's data is gone

    assert cli("index", str(SEED), "--rebuild", *where, "--quiet").exit_code == 0  # schema to schema
    second = root_meta(database_url)["live"]
    assert second != first and generation_schemas(database_url) == {second}
    after = json.loads(cli("ask", WASTE_Q, *where, "--json").stdout)
    assert after["grounded"] and after["citations"] == before["citations"]
    assert after["citations"][0]["quote"] == WASTE_SENTENCE


@pytest.mark.slow
def test_an_index_made_before_generations_is_rebuilt_into_one(database_url, embeddings, tmp_path):
    """Tables in the database's own schema and no pointer: the layout of every index made before
    generations. It answers as it is, and its first rebuild moves it into a schema; the feed
    subscriptions (not index data) stay where they are."""
    store = IndexStore(tmp_path / "ix", embeddings, embedding_model=MODEL, database_url=database_url)
    subscriptions = SubscriptionStore.for_index(tmp_path / "ix", database_url)
    try:
        index_paths(store, [SEED])
        subscriptions.add(["https://news.example.org/rss.xml"])
        assert tables_in(database_url, "public") >= INDEX_TABLES and "live" not in root_meta(database_url)
        assert store.dir == store.root and (store.root / "chroma").is_dir()
        before = assert_answers_the_seed_question(store)
        token = store.folder.token()

        report, store = rebuild_index(store, None)  # as the web app's Rebuild button does
        assert report.added == [SEED_ID] and report.chunks_added > 0
        live = root_meta(database_url)["live"]
        assert store.dir == store.root / live and store.folder.live() == store.dir
        assert store.folder.token() != token  # readers notice the switch
        assert assert_answers_the_seed_question(store) == before
        assert tables_in(database_url, live) >= INDEX_TABLES | {"articleqa_meta"}
        public = tables_in(database_url, "public")
        assert not public & INDEX_TABLES and "articleqa_meta" in public and "articleqa_subscriptions" in public
        assert "manifest" not in root_meta(database_url)  # the manifest is the generation's
        assert read_manifest(tmp_path / "another-machine", database_url).embedding_model == MODEL
        # Embedded Chroma: the generation's folder holds its chroma/, the root's is gone.
        assert (store.dir / "chroma").is_dir() and not (store.root / "chroma").exists()
        assert [s.url for s in subscriptions.list()] == ["https://news.example.org/rss.xml"]
    finally:
        store.close()
        subscriptions.close()


@pytest.mark.slow
def test_a_reader_on_another_machine_answers_during_and_after_a_rebuild(
    chroma_server, database_url, embeddings, tmp_path
):
    """The web app on another machine (its own folder) answers from the old schema while the
    new one is built, and from the new one after the switch, noticed through the token."""
    servers = {"chroma_url": chroma_server, "database_url": database_url}
    writer = IndexStore(tmp_path / "writer", embeddings, embedding_model=MODEL, **servers)
    (tmp_path / "bridge.txt").write_text(BRIDGE, encoding="utf-8")
    index_paths(writer, [SEED, tmp_path / "bridge.txt"])
    _, writer = rebuild_index(writer, None)  # the reader starts on a generation
    library = Library(tmp_path / "reader", QAOptions(**servers))
    try:
        before = citation(library.qa().ask(WASTE_Q))
        assert library.store.dir.name == writer.dir.name
        old = writer.dir.name
        during: list[tuple[str, tuple, str]] = []

        def ask_meanwhile(phase: str, done: int, total: int | None) -> None:
            if phase == "indexing":  # the new schema is being written, the old one is live
                with library.session() as qa:
                    during.append((library.store.dir.name, citation(qa.ask(WASTE_Q)), qa.ask(BRIDGE_Q).text))

        _, writer = rebuild_index(writer, None, progress=ask_meanwhile)
        new = writer.dir.name
        assert new != old and during
        assert all(
            schema == old and cited == before and "9.7 million euros" in bridge for schema, cited, bridge in during
        )
        with library.session() as qa:  # the token moved: reopened on the new schema
            assert citation(qa.ask(WASTE_Q)) == before
            assert "9.7 million euros" in qa.ask(BRIDGE_Q).text
        assert library.store.dir.name == new and generation_schemas(database_url) == {new}
    finally:
        library.close()
        writer.close()


@pytest.mark.slow
def test_a_question_in_flight_at_the_switch_finishes_on_the_old_index(
    chroma_server, database_url, embeddings, tmp_path
):
    """A question that began on the old index just before the switch still reads it a second
    after the switch: the old tables and collection stay `SWITCH_GRACE_S` (without that, the
    old data is dropped at once and this question fails on a missing table)."""
    servers = {"chroma_url": chroma_server, "database_url": database_url}
    writer = IndexStore(tmp_path / "writer", embeddings, embedding_model=MODEL, **servers)
    index_paths(writer, [SEED])
    library = Library(tmp_path / "reader", QAOptions(**servers))
    answers: list[tuple] = []
    errors: list[str] = []
    leased = threading.Event()

    def question_across_the_switch() -> None:
        try:
            with library.session() as qa:  # opened on the old index (the root's tables)
                leased.set()
                deadline = time.monotonic() + 120
                while "live" not in root_meta(database_url) and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(1.0)  # well after the switch
                answers.append(citation(qa.ask(WASTE_Q)))
        except Exception as exc:  # noqa: BLE001 -- asserted below
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            leased.set()

    try:
        before = citation(library.qa().ask(WASTE_Q))
        asker = threading.Thread(target=question_across_the_switch)
        asker.start()
        assert leased.wait(60)
        _, writer = rebuild_index(writer, None)
        asker.join(timeout=120)
        assert errors == [] and answers == [before]
        assert tables_in(database_url, "public") == {"articleqa_meta"}  # dropped after the grace
    finally:
        library.close()
        writer.close()


@pytest.mark.slow
def test_with_a_chroma_server_the_old_collection_is_deleted_after_the_switch(
    chroma_server, database_url, embeddings, tmp_path
):
    store = IndexStore(
        tmp_path / "ix", embeddings, embedding_model=MODEL, chroma_url=chroma_server, database_url=database_url
    )
    client = chromadb.HttpClient(host="127.0.0.1", port=int(chroma_server.rsplit(":", 1)[1]))
    try:
        index_paths(store, [SEED])
        assert {c.name for c in client.list_collections()} == {"articleqa"}
        before = assert_answers_the_seed_question(store)
        for _ in range(2):  # root to schema, then schema to schema
            _, store = rebuild_index(store, None)
            assert {c.name for c in client.list_collections()} == {f"articleqa.{store.dir.name}"}
            assert store.dense.get(include=[])["ids"] and assert_answers_the_seed_question(store) == before
        assert generation_schemas(database_url) == {store.dir.name}
        assert not (tmp_path / "ix").exists()  # servers for everything: the folder holds nothing
    finally:
        store.close()


@pytest.mark.slow
def test_a_failed_rebuild_keeps_the_live_index_and_leaves_no_schema(database_url, embeddings, tmp_path, monkeypatch):
    import articleqa.index.indexer as indexer

    store = IndexStore(tmp_path / "ix", embeddings, embedding_model=MODEL, database_url=database_url)
    try:
        index_paths(store, [SEED])
        _, store = rebuild_index(store, None)
        live = store.dir.name
        before = assert_answers_the_seed_question(store)
        written = indexer.Indexer.index_articles

        def fails_midway(self, articles, *, report, force=False):
            written(self, articles, report=report, force=force)  # the new schema holds the chunks
            raise OSError("disk full")

        monkeypatch.setattr(indexer.Indexer, "index_articles", fails_midway)
        with pytest.raises(OSError, match="disk full"):
            rebuild_index(store, None)
        monkeypatch.undo()
        assert root_meta(database_url)["live"] == live and store.folder.live() == store.dir
        assert generation_schemas(database_url) == {live}
        assert [p.name for p in store.root.iterdir() if p.name.startswith(SCHEMA_PREFIX)] == [live]
        assert assert_answers_the_seed_question(store) == before
    finally:
        store.close()


# Rebuilds the index in `argv[1]` held in the database `argv[2]`, and SIGKILLs itself once the
# new schema holds every chunk, just before the switch.
KILLED_REBUILD = """
import os, signal, sys
from articleqa.index import open_index, rebuild_index

def progress(phase, done, total):
    if phase == "indexing" and total and done == total:
        os.kill(os.getpid(), signal.SIGKILL)

rebuild_index(open_index(sys.argv[1], database_url=sys.argv[2]), None, progress=progress)
"""


@pytest.mark.slow
def test_a_killed_rebuild_leaves_the_live_index_and_the_next_writer_drops_its_schema(
    database_url, embeddings, tmp_path
):
    store = IndexStore(tmp_path / "ix", embeddings, embedding_model=MODEL, database_url=database_url)
    try:
        index_paths(store, [SEED])
        before = assert_answers_the_seed_question(store)
        token = store.folder.token()
        killed = subprocess.run(
            [sys.executable, "-c", KILLED_REBUILD, str(tmp_path / "ix"), database_url],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        [left] = generation_schemas(database_url)  # half-built, never live
        assert tables_in(database_url, left) >= INDEX_TABLES and (tmp_path / "ix" / left / "chroma").is_dir()
        assert "live" not in root_meta(database_url) and store.folder.live() == store.root
        assert store.folder.token() != token  # the killed session had begun: readers reopen, on the same data
        store.reopen()
        assert assert_answers_the_seed_question(store) == before

        (tmp_path / "bridge.txt").write_text(BRIDGE, encoding="utf-8")
        report = index_paths(store, [tmp_path / "bridge.txt"], wait=30)  # the lock went with the process
        assert report.added == ["bridge"]
        assert generation_schemas(database_url) == set() and not (tmp_path / "ix" / left).exists()
        assert not any(key.startswith("generation:") for key in root_meta(database_url))
        assert "9.7 million euros" in ArticleQA(store).ask(BRIDGE_Q).text
    finally:
        store.close()
        shutil.rmtree(tmp_path / "ix", ignore_errors=True)
