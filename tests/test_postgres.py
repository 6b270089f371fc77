"""An index kept in PostgreSQL (`--database-url`), against a real server started by the tests.

The same answers as the SQLite index folder, incremental re-indexing with LangChain's record
manager in PostgreSQL, one writer at a time across processes that share no folder, readers on
other machines (other folders) with a Chroma server, and clear errors for bad URLs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.embeddings import FakeEmbeddings
from sqlalchemy import create_engine, event, text
from typer.testing import CliRunner

from articleqa.index import IndexBusyError, index_paths, open_index
from articleqa.index.articles import ArticleStore
from articleqa.index.database import Database, DatabaseUnavailableError, parse_database_url, safe_url
from articleqa.index.lexical import LexicalIndex, LexicalRow
from articleqa.index.pg_articles import PostgresArticleStore
from articleqa.index.pg_lexical import PostgresLexicalIndex
from articleqa.index.store import IndexStore
from articleqa.qa.api import ArticleQA, EmptyIndexError
from articleqa.qa.options import QAOptions
from articleqa.qa.text import content_terms
from articleqa.ui.cli import app
from articleqa.ui.library import Library
from tests import postgres_server
from tests.conftest import BRIDGE, BRIDGE_Q, SEED, SEED_ID, WASTE_Q, WASTE_SENTENCE, corpus_rows, write_jsonl
from tests.postgres_server import free_port

pytestmark = pytest.mark.integration  # a PostgreSQL server on 127.0.0.1
runner = CliRunner()
ARTICLEQA = str(Path(sys.executable).with_name("articleqa"))
MODEL = "bundled:all-MiniLM-L6-v2"
EVAL = Path(__file__).parent / "data" / "eval.jsonl"
# What the folder held for the index before (index.folder.DATA_NAMES): none of it with a database.
FOLDER_DATA = {"manifest.json", "version", "lexical.sqlite", "articles.sqlite", "records.sqlite", "CURRENT"}


def cli(*args: str):
    return runner.invoke(app, list(args), env={})


def public_methods(cls: type) -> set[str]:
    return {name for name in vars(cls) if not name.startswith("_")}


def answer_key(answer) -> tuple:
    """What must agree between the two databases: the answer and every citation's place."""
    return (
        answer.grounded,
        answer.text,
        [(c.article_id, c.start, c.end, c.quote) for c in answer.citations],
        [(c.article_id, c.start, c.end) for c in answer.related],
    )


# ---- quick: URLs and interfaces (no server) --------------------------------------------------


def test_database_urls_are_checked_with_a_message_naming_the_value_and_what_is_valid():
    assert parse_database_url("postgresql://u:p@db/x").drivername == "postgresql+psycopg"
    assert parse_database_url("postgresql+psycopg://u@db/x").drivername == "postgresql+psycopg"
    with pytest.raises(DatabaseUnavailableError, match=r"names a 'sqlite' database; supported: postgresql"):
        parse_database_url("sqlite:///x.db")
    with pytest.raises(DatabaseUnavailableError, match="is not a SQLAlchemy URL; expected e.g. postgresql"):
        parse_database_url("db.example.com:5432")
    with pytest.raises(DatabaseUnavailableError, match="names the driver 'psycopg2'; the one installed is psycopg"):
        parse_database_url("postgresql+psycopg2://u@db/x")
    assert "secret" not in safe_url("postgresql+psycopg://user:secret@db/x")


def test_the_postgres_classes_offer_what_the_sqlite_ones_do():
    assert public_methods(LexicalIndex) - {"path"} <= public_methods(PostgresLexicalIndex)
    assert public_methods(ArticleStore) - {"path"} <= public_methods(PostgresArticleStore)


def test_the_default_sqlite_index_never_loads_the_database_code(tmp_path):
    script = (
        "import sys; from articleqa.index import open_index; from articleqa.qa import api; "
        f"s = open_index({str(tmp_path / 'ix')!r}); s.articles.count(); s.lexical.count(); s.close(); "
        "loaded = [m for m in ('psycopg', 'articleqa.index.database', 'articleqa.index.pg_lexical') if m in sys.modules]; "
        "print(loaded)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_missing_postgresql_binaries_fail_naming_the_package(monkeypatch, tmp_path):
    """The `postgres` fixture turns this into a test failure, never a skip."""
    monkeypatch.setattr(postgres_server, "postgres_bin", lambda: None)
    with pytest.raises(RuntimeError, match=r"apt-get install -y --no-install-recommends postgresql"):
        postgres_server.start_postgres(tmp_path)


def test_unreachable_database_is_a_one_line_error(tmp_path):
    url = f"postgresql+psycopg://nobody:secret@127.0.0.1:{free_port()}/articleqa"
    result = cli("index", str(SEED), "--index-dir", str(tmp_path / "ix"), "--database-url", url)
    assert result.exit_code == 2
    assert "cannot reach the database at postgresql+psycopg://nobody:***@127.0.0.1" in result.stderr
    assert "secret" not in result.output and "Traceback" not in result.output


# ---- a real server, no model -----------------------------------------------------------------


def test_lexical_index_rows_filters_and_statistics(database_url):
    database = Database(database_url, "test")
    lexical = PostgresLexicalIndex(database)
    rows = [
        LexicalRow("c1", "a1", "Paper", 738000, 0, 40, "Kestrelvik paid 48,213 kroner for the ferry."),
        LexicalRow("c2", "a2", "Wire", 738100, 0, 30, "The ferry to Kestrelvik runs daily."),
        LexicalRow("c3", "a3", None, None, 0, 20, "Nothing about boats here."),
    ]
    lexical.upsert(rows)
    assert lexical.count() == 3 and lexical.get(["c1", "zz"]) == {"c1": rows[0]}
    assert [h.chunk_id for h in lexical.search("How many kroner did Kestrelvik pay?", 5)][0] == "c1"
    assert [h.chunk_id for h in lexical.search("48,213", 5)] == ["c1"]  # the phrase "48" then "213"
    assert [h.chunk_id for h in lexical.search("213,48", 5)] == []  # the phrase in the other order
    assert [h.chunk_id for h in lexical.search("ferry", 5, sources=["Wire"])] == ["c2"]
    assert [h.chunk_id for h in lexical.search("ferry", 5, published_to=738050)] == ["c1"]
    assert [h.chunk_id for h in lexical.search("ferry", 5, article_ids=["a2"])] == ["c2"]
    assert lexical.search("ferry", 5, published_from=1) and not lexical.search("boats", 5, published_from=1)
    assert lexical.document_frequencies(["ferri", "kestrelvik", "absent", "u.s"]) == ({"ferri": 2, "kestrelvik": 2}, 3)
    lexical.upsert([LexicalRow("c2", "a2", "Wire", 738100, 0, 9, "Replaced.")])  # same id: replaced, not added
    assert lexical.count() == 3 and not lexical.search("Kestrelvik", 5, article_ids=["a2"])
    lexical.delete(["c1", "c2", "missing"])
    assert lexical.chunk_ids() == {"c3"} and lexical.count() == 1
    with database.begin() as db:  # the statistics BM25 reads stay exact through replace and delete
        assert db.execute(text("SELECT chunks, tokens FROM articleqa_lexical_stats")).one() == (1, 4)
    assert lexical.document_frequencies(["boat", "ferri", "kestrelvik"]) == ({"boat": 1}, 1)
    # Equal scores come in the order the chunks were written, a replaced one last, as in FTS5.
    same = "The ferry to Kestrelvik runs daily."
    lexical.upsert([LexicalRow(i, "a" + i, None, None, 0, 9, same) for i in ("m", "c", "x")])
    lexical.upsert([LexicalRow("c", "ac", None, None, 0, 9, same)])
    assert [h.chunk_id for h in lexical.search("Kestrelvik ferry", 5)] == ["m", "x", "c"]
    database.dispose()


def test_one_writer_at_a_time_across_folders(database_url, tmp_path):
    unused = FakeEmbeddings(size=384)  # nothing is embedded: only the write lock is used
    first = IndexStore(tmp_path / "a", unused, embedding_model=MODEL, database_url=database_url)
    second = IndexStore(tmp_path / "b", unused, embedding_model=MODEL, database_url=database_url)
    try:
        with first.write_session():
            with pytest.raises(IndexBusyError, match="another process is writing to the index in postgresql"):
                with second.write_session(wait=0):
                    pass
            waited = []
            with pytest.raises(IndexBusyError):
                with second.write_session(wait=0.5, on_wait=lambda: waited.append(True)):
                    pass
            assert waited == [True]
            # The CLI's "waiting for another process writing to ..." names the database.
            assert second.folder.where() == safe_url(database_url) and str(tmp_path) not in second.folder.where()
        with second.write_session(wait=0):  # free again
            pass
        assert first.folder.token() != first.token  # the second's session changed the shared token
    finally:
        first.close()
        second.close()


# ---- with the model --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def both_indexes(tmp_path_factory, embeddings, postgres):
    """The seed and 60 Wikinews articles indexed twice: SQLite files, and PostgreSQL (+ embedded Chroma)."""
    folder = tmp_path_factory.mktemp("both")
    inputs = [SEED, write_jsonl(folder / "wikinews.jsonl", corpus_rows(60))]
    url = postgres.create_database("both_indexes")
    built = {}
    for name, database in (("sqlite", None), ("postgres", url)):
        store = IndexStore(folder / name, embeddings, embedding_model=MODEL, database_url=database)
        report = index_paths(store, inputs)
        assert not report.failed and len(report.added) == 61
        store.close()
        built[name] = folder / name
    return built["sqlite"], built["postgres"], url


@pytest.mark.slow
def test_answers_equal_the_sqlite_index(both_indexes):
    """Same passages, same lexical hits and scores, same document frequencies: same answers."""
    sqlite_dir, pg_dir, url = both_indexes
    ids = {SEED_ID} | {r["id"] for r in corpus_rows(60)}
    questions = [q for q in map(json.loads, EVAL.read_text().splitlines()) if set(q["article_ids"]) <= ids]
    assert len(questions) >= 40
    assert not {p.name for p in pg_dir.iterdir()} & FOLDER_DATA
    one = ArticleQA.from_options(sqlite_dir, QAOptions())
    two = ArticleQA.from_options(pg_dir, QAOptions(database_url=url))
    try:
        assert two.store.articles.count() == one.store.articles.count() == 61
        assert two.store.lexical.chunk_ids() == one.store.lexical.chunk_ids() == two.store.dense_ids()
        differ = []
        for q in questions:
            question = q["question"]
            hits = [one.store.lexical.search(question, 12), two.store.lexical.search(question, 12)]
            assert [h.chunk_id for h in hits[0]] == [h.chunk_id for h in hits[1]], question
            assert [h.score for h in hits[1]] == pytest.approx([h.score for h in hits[0]], rel=1e-9), question
            terms = content_terms(question)
            assert one.store.lexical.document_frequencies(terms) == two.store.lexical.document_frequencies(terms)
            if answer_key(one.ask(question)) != answer_key(two.ask(question)):
                differ.append(question)
        assert differ == []
        waste = two.ask(WASTE_Q)
        assert waste.grounded and waste.citations[0].quote == WASTE_SENTENCE
        assert one.store.articles.list() == two.store.articles.list()
        assert one.store.articles.date_range() == two.store.articles.date_range()
        assert one.store.articles.sources() == two.store.articles.sources()
    finally:
        one.close()
        two.close()


# The most statements one `ask` sends to PostgreSQL (extractive answerer, no LLM): the article
# count twice (the source catalog), per lexical search (one, plus one for a time cue and one for
# a named source) the statistics and the scores, the chunk rows (again for a
# named source), the article rows, the sentence vectors and the document frequencies. Each is one
# round trip: no transaction, no ping. On the questions below: 8 to 13 statements. Before (the
# same questions): 10 to 20 statements in 7 to 10 transactions, each opened with a ping (with
# BEGIN and COMMIT, 31 to 50 round trips).
MAX_STATEMENTS_PER_QUESTION = 14


@pytest.mark.slow
def test_a_question_costs_a_few_statements_without_transactions_or_pings(both_indexes, monkeypatch):
    """Server mode's round trips per question stay few (see MAX_STATEMENTS_PER_QUESTION), and the
    answers stay those of the SQLite index."""
    from articleqa.index import database as database_module

    # No connection sits idle long enough for its idle ping here, however slow the machine.
    monkeypatch.setattr(database_module, "PING_IDLE_S", 3600.0)
    sqlite_dir, pg_dir, url = both_indexes
    ids = {SEED_ID} | {r["id"] for r in corpus_rows(60)}
    questions = [q["question"] for q in map(json.loads, EVAL.read_text().splitlines()) if set(q["article_ids"]) <= ids]
    questions += [  # a named source and a time cue (three searches), a long question (two rounds each)
        "According to Wikinews, how many girls died in the escape room fire in Koszalin last week?",
        "Which senator, who proposed an amendment to the U.S. Constitution on term limits according to "
        "Wikinews, also commented on the government shutdown, the border wall funding dispute with "
        "President Trump and the election of Nancy Pelosi as Speaker of the 116th Congress in 2019?",
    ]
    one = ArticleQA.from_options(sqlite_dir, QAOptions())
    two = ArticleQA.from_options(pg_dir, QAOptions(database_url=url))
    engine = two.store.database.engine
    statements: list[str] = []
    in_transaction: list[str] = []
    pings: list[object] = []

    def counted(connection, _cursor, statement, _parameters, _context, _executemany) -> None:
        statements.append(statement)
        if not connection.connection.dbapi_connection.autocommit:  # psycopg sent a BEGIN first
            in_transaction.append(statement)

    ping = engine.dialect.do_ping
    engine.dialect.do_ping = lambda connection: pings.append(connection) or ping(connection)
    event.listen(engine, "before_cursor_execute", counted)
    try:
        two.ask(WASTE_Q)  # connections made, the source catalog read
        per_question = {}
        for question in questions:
            statements.clear()
            answer = two.ask(question)
            per_question[question] = len(statements)
            assert answer_key(answer) == answer_key(one.ask(question)), question
        assert len(per_question) >= 40
        assert max(per_question.values()) <= MAX_STATEMENTS_PER_QUESTION, per_question
        assert in_transaction == [] and pings == []
        with two.store.database.begin() as db:  # writes still run in a transaction, pinged first
            db.execute(text("SELECT 1"))
        assert in_transaction == ["SELECT 1"] and len(pings) == 1
    finally:
        event.remove(engine, "before_cursor_execute", counted)
        del engine.dialect.do_ping
        one.close()
        two.close()


@pytest.mark.slow
def test_a_restarted_server_is_reconnected_and_a_stopped_one_is_a_clear_error(tmp_path):
    """Without a ping on every checkout: a read on a pooled connection the server dropped is run
    again on a new one, a write pings first, and a server that is gone is still a one-line
    `DatabaseUnavailableError`."""
    try:
        server = postgres_server.start_postgres(tmp_path / "pg")
    except RuntimeError as exc:
        pytest.fail(str(exc))
    options = f"-h 127.0.0.1 -p {server.port} -k {tmp_path / 'pg' / 'sockets'} -c fsync=off"

    def restart() -> None:
        server.stop()
        started = server._run(
            str(server.bin / "pg_ctl"), "-D", str(server.data), "-l", str(tmp_path / "pg" / "server.log"),
            "-o", options, "-w", "start",
        )  # fmt: skip
        assert started.returncode == 0, started.stderr

    database = Database(server.url(), "restart")
    try:
        database.set_meta("key", "one")
        restart()  # the pooled connection is dead now, used a moment ago (no idle ping)
        assert database.get_meta("key") == "one"
        restart()
        database.set_meta("key", "two")  # pinged, so a new connection
        assert database.get_meta("key") == "two"
        server.stop()
        with pytest.raises(DatabaseUnavailableError, match=r"^cannot reach the database at postgresql\+psycopg://"):
            database.get_meta("key")
        with pytest.raises(DatabaseUnavailableError, match="cannot reach the database at"):
            database.set_meta("key", "three")
    finally:
        database.dispose()
        server.stop()


@pytest.mark.slow
def test_reindexing_is_incremental_with_the_records_in_postgres(database_url, open_store, counting, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(SEED, inputs / SEED.name)
    (inputs / "bridge.txt").write_text(BRIDGE, encoding="utf-8")
    store = open_store(tmp_path / "ix", database_url=database_url)
    first = index_paths(store, [inputs])
    assert sorted(first.added) == ["bridge", SEED_ID] and first.chunks_added > 0
    assert not {p.name for p in (tmp_path / "ix").iterdir()} & FOLDER_DATA  # only chroma/

    embedded = counting.documents_embedded
    again = index_paths(store, [inputs])
    assert sorted(again.unchanged) == ["bridge", SEED_ID] and again.chunks_added == 0
    assert counting.documents_embedded == embedded  # nothing embedded again

    (inputs / "bridge.txt").write_text(BRIDGE.replace("9.7 million", "11.2 million"), encoding="utf-8")
    changed = index_paths(store, [inputs])
    assert changed.updated == ["bridge"] and changed.chunks_deleted >= 1 and changed.chunks_added >= 1
    assert "11.2 million" in store.articles.get("bridge").text
    assert store.lexical.search("9.7", 5, article_ids=["bridge"]) == [] != store.lexical.search("11.2", 5)

    (inputs / "bridge.txt").unlink()
    kept = index_paths(store, [inputs])  # without --prune nothing is removed
    assert store.articles.get("bridge") is not None and not kept.removed
    pruned = index_paths(store, [inputs], prune=True)
    assert pruned.removed == ["bridge"] and store.articles.count() == 1
    assert store.dense_ids() == store.lexical.chunk_ids() == store.record_keys() != set()
    # The record manager's rows are in PostgreSQL, in this index's namespace.
    engine = create_engine(store.database.url)
    with engine.connect() as db:
        keys = set(
            db.execute(text("SELECT key FROM upsertion_record WHERE namespace = 'articleqa/articleqa'")).scalars()
        )
    engine.dispose()
    assert keys == store.lexical.chunk_ids()


@pytest.mark.slow
def test_lexical_search_finds_a_name_and_a_number_only_in_the_text(database_url, embeddings, tmp_path):
    article = tmp_path / "ferry.txt"
    article.write_text(
        "Island ferry fares rise\n\nThe harbour board of Kestrelvik agreed on Tuesday to raise the "
        "yearly pass to 48,213 kroner, citing fuel costs.",
        encoding="utf-8",
    )
    store = IndexStore(tmp_path / "ix", embeddings, embedding_model=MODEL, database_url=database_url)
    try:
        index_paths(store, [SEED, article])
        for query in ("Kestrelvik", "48,213"):
            hits = store.lexical.search(query, 3)
            assert [store.lexical.get([h.chunk_id])[h.chunk_id].article_id for h in hits] == ["ferry"], query
        answer = ArticleQA(store).ask("How much does the Kestrelvik yearly pass cost?")
    finally:
        store.close()
    assert answer.grounded and "48,213" in answer.citations[0].quote


@pytest.mark.slow
def test_the_web_app_notices_another_writer_through_the_database(database_url, tmp_path, embeddings):
    """The web app's `Library` reopens when the database's change token moves, as it does for
    the index folder's version file."""
    library = Library(tmp_path / "ix", QAOptions(database_url=database_url))
    writer = IndexStore(tmp_path / "ix", embeddings, embedding_model=MODEL, database_url=database_url)
    try:
        assert library.qa() is None  # no articles yet
        index_paths(writer, [SEED])
        before = library.qa()
        assert before is not None and not before.ask(BRIDGE_Q).grounded
        (tmp_path / "bridge.txt").write_text(BRIDGE, encoding="utf-8")
        index_paths(writer, [tmp_path / "bridge.txt"])
        after = library.qa()
        assert after is not before  # reopened on the new token
        assert library.stats()["articles"] == 2
        assert "9.7 million euros" in after.ask(BRIDGE_Q).text
    finally:
        writer.close()
        library.close()


@pytest.mark.slow
def test_no_index_in_the_database_is_a_clear_error(database_url, tmp_path):
    with pytest.raises(EmptyIndexError, match=r"no index in postgresql\+psycopg://articleqa-pg@127.0.0.1"):
        ArticleQA.from_options(tmp_path / "ix", QAOptions(database_url=database_url))
    assert not (tmp_path / "ix").exists()


# ---- Chroma server + PostgreSQL: nothing in the folder, several processes ---------------------


def run_cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [ARTICLEQA, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def finished(proc: subprocess.Popen, timeout: float = 300) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out)


@pytest.mark.slow
def test_with_a_chroma_server_the_index_folder_holds_nothing_needed(chroma_server, database_url, tmp_path):
    servers = ["--chroma-url", chroma_server, "--database-url", database_url]
    indexed = cli("index", str(SEED), "--index-dir", str(tmp_path / "ix"), *servers, "--json")
    assert indexed.exit_code == 0, indexed.output
    assert json.loads(indexed.stdout)["added"] == [SEED_ID]
    shutil.rmtree(tmp_path / "ix", ignore_errors=True)  # the folder is gone (another machine asks)
    asked = cli("ask", WASTE_Q, "--index-dir", str(tmp_path / "elsewhere"), *servers, "--json")
    assert asked.exit_code == 0, asked.output
    answer = json.loads(asked.stdout)
    assert answer["grounded"] and answer["citations"][0]["quote"] == WASTE_SENTENCE
    assert answer["citations"][0]["article_id"] == SEED_ID
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.slow
def test_two_indexers_at_once_never_duplicate_chunks(chroma_server, database_url, tmp_path):
    """Two processes, two folders (two machines), the same inputs at the same time: the database's
    write lock makes one wait; then it finds every article unchanged."""
    inputs = [str(SEED), str(write_jsonl(tmp_path / "some.jsonl", corpus_rows(12)))]
    servers = ["--chroma-url", chroma_server, "--database-url", database_url]
    procs = [run_cli("index", *inputs, "--index-dir", str(tmp_path / name), *servers, "--json") for name in "ab"]
    reports = [finished(p) for p in procs]
    added = sorted(len(r["added"]) for r in reports)
    assert added == [0, 13], added
    assert sum(r["summary"]["chunks_added"] for r in reports) == max(r["summary"]["chunks_added"] for r in reports)
    store = open_index(tmp_path / "check", chroma_url=chroma_server, database_url=database_url)
    try:
        dense = store.dense.get(include=[])["ids"]
        with store.database.begin() as db:
            rows = list(db.execute(text("SELECT chunk_id FROM articleqa_chunks")).scalars())
        assert len(dense) == len(set(dense)) == len(rows) == len(set(rows)) == store.articles.chunk_total()
        assert set(dense) == set(rows) == store.record_keys()
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize("in_database", [True, False], ids=["postgres", "sqlite"])
def test_check_finds_and_repairs_chunks_on_one_side_only(in_database, request, tmp_path):
    database = ["--database-url", request.getfixturevalue("database_url")] if in_database else []
    (tmp_path / "bridge.txt").write_text(BRIDGE, encoding="utf-8")
    inputs = [str(SEED), str(tmp_path / "bridge.txt")]
    where = ["--index-dir", str(tmp_path / "ix"), *database]
    assert cli("index", *inputs, *where, "--quiet").exit_code == 0
    clean = cli("check", *where, "--json")
    assert clean.exit_code == 0 and json.loads(clean.stdout)["consistent"]

    store = open_index(tmp_path / "ix", database_url=database[1] if database else None)
    seed_chunk = sorted(store.lexical.chunk_ids_of(SEED_ID))[0]
    bridge_chunk = sorted(store.lexical.chunk_ids_of("bridge"))[0]
    store.dense.delete(ids=[seed_chunk])  # lost from Chroma: left in the lexical index
    store.lexical.delete([bridge_chunk])  # lost from the lexical index: left in Chroma
    store.close()

    found = cli("check", *where, "--json")
    assert found.exit_code == 1
    report = json.loads(found.stdout)
    assert (report["only_in_chroma"], report["only_in_lexical"]) == ([bridge_chunk], [seed_chunk])
    repaired = cli("check", *where, "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert f"index these 2 article(s) again to restore them: bridge, {SEED_ID}" in repaired.stdout
    assert json.loads(cli("check", *where, "--json").stdout)["consistent"]

    again = cli("index", *inputs, *where, "--json")  # the articles come back, only their lost chunks embedded
    assert sorted(json.loads(again.stdout)["added"]) == ["bridge", SEED_ID]
    assert json.loads(again.stdout)["summary"]["chunks_added"] == 2
    assert json.loads(cli("check", *where, "--json").stdout)["consistent"]
    asked = cli("ask", BRIDGE_Q, *where, "--json")
    assert "9.7 million euros" in json.loads(asked.stdout)["text"]


@pytest.mark.integration
def test_feed_subscriptions_live_in_the_database_not_the_folder(database_url, tmp_path):
    """`watch` on one machine and the web app on another read one list: with a database URL the
    subscriptions are two tables there, and no subscriptions.sqlite is written."""
    from articleqa.index.subscriptions import SUBSCRIPTIONS_FILE, SubscriptionStore

    url = "https://news.example.org/rss.xml"
    first = SubscriptionStore.for_index(tmp_path / "a", database_url)
    try:
        assert first.add([url]) == [url]
    finally:
        first.close()
    # Another folder, the same database, its URL without a driver as users write it.
    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    assert plain != database_url
    second = SubscriptionStore.for_index(tmp_path / "b", plain)
    try:
        assert [s.url for s in second.list()] == [url]
    finally:
        second.close()
    assert not (tmp_path / "a" / SUBSCRIPTIONS_FILE).exists() and not (tmp_path / "b").exists()
    database = Database(database_url, namespace="")
    try:
        with database.begin() as db:
            assert db.execute(text("SELECT count(*) FROM articleqa_subscriptions")).scalar() == 1
    finally:
        database.dispose()
