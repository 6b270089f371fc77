"""Lexical search in PostgreSQL (`index.pg_lexical`) against a saved copy of another version of it.

Builds the corpus of `bench.scaling` once into a kept folder (a PostgreSQL server of its own,
embedded Chroma), then times, on that index, the lexical search of every question (and whole
`ask`s) with the current code and with the code of a given file (e.g. the version before a
change, `git show HEAD:index/pg_lexical.py > /tmp/old.py`), alternating question by question so
that both see the same load, and checks that both return FTS5's hits (an SQLite copy of the
same chunks, written in the same order).

    python -m bench.pg_lexical build DIR [--size 3000]
    python -m bench.pg_lexical compare DIR OLD.py [--reps 3] [--asks]
    python -m bench.pg_lexical stop DIR

The server keeps running between commands (`stop` stops it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
# Hits per search: what the retriever asks for (max(candidates, 3 * k) = 30 by default).
K = 30


def build(folder: Path, size: int) -> None:
    """The corpus of `size` articles indexed into `folder` with PostgreSQL, and an SQLite copy
    of the chunk rows (`lexical.sqlite`), in the order PostgreSQL holds them."""
    from bench.scaling import EXAMPLES, FILE_ROWS, MULTIHOP, distractors
    from tests.postgres_server import start_postgres

    folder.mkdir(parents=True, exist_ok=True)
    server = start_postgres(folder / "postgres")
    url = server.create_database("bench")
    (folder / "server.json").write_text(json.dumps({"url": url, "data": str(server.data)}))
    inputs = [EXAMPLES, MULTIHOP / "articles.jsonl"]
    made = distractors(size - 901)
    for at in range(0, len(made), FILE_ROWS):
        feed = folder / f"distractors-{at // FILE_ROWS:02d}.jsonl"
        feed.write_text("".join(json.dumps(row) + "\n" for row in made[at : at + FILE_ROWS]), encoding="utf-8")
        inputs.append(feed)
    from articleqa.index import index_paths, open_index

    store = open_index(folder / "index", database_url=url)
    started = time.perf_counter()
    report = index_paths(store, inputs)
    print(
        f"indexed {store.articles.count()} articles, {report.chunks_added} chunks in {time.perf_counter() - started:.0f} s"
    )
    store.close()
    copy_to_sqlite(url, folder / "lexical.sqlite")


def copy_to_sqlite(url: str, path: Path) -> None:
    """The PostgreSQL chunk rows, in insertion order, into an SQLite `LexicalIndex` at `path`."""
    from sqlalchemy import text

    from articleqa.index.database import Database
    from articleqa.index.lexical import LexicalIndex, LexicalRow

    database = Database(url, "bench")
    rows = database.read(
        lambda db: db.execute(
            text(
                'SELECT chunk_id, article_id, source, published_ord, start, "end", text FROM articleqa_chunks ORDER BY seq'
            )
        ).all()
    )
    path.unlink(missing_ok=True)
    lexical = LexicalIndex(path)
    lexical.upsert(LexicalRow(*row) for row in rows)
    lexical.close()
    database.dispose()


def questions() -> list[tuple[str, dict]]:
    """The questions of `bench.scaling` (eval.jsonl and the long MultiHop-RAG ones), each with
    the filters a search may take: none, a source, a date range, and article ids."""
    from articleqa.qa.evaluation import load_questions
    from bench.scaling import LONG_QUESTIONS, MULTIHOP, QUESTIONS

    asked = [q.question for q in load_questions(QUESTIONS)]
    asked += [q.question for q in load_questions(MULTIHOP / "questions-report.jsonl")[:LONG_QUESTIONS]]
    return [(q, {}) for q in asked]


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("old_pg_lexical", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(folder: Path, old_path: Path, reps: int, asks: bool) -> None:
    """Time the lexical search of every question, old code, new code and FTS5 alternating, and
    check both PostgreSQL versions against FTS5; optionally whole asks (old and new
    alternating on the same index)."""
    from articleqa.index.database import Database
    from articleqa.index.lexical import LexicalIndex
    from articleqa.index.pg_lexical import PostgresLexicalIndex

    url = json.loads((folder / "server.json").read_text())["url"]
    old_module = load_module(old_path)
    database = Database(url, "bench")
    indexes = {
        "old": old_module.PostgresLexicalIndex(database),
        "new": PostgresLexicalIndex(database),
        "fts5": LexicalIndex(folder / "lexical.sqlite"),
    }
    asked = questions()
    for kind, searches in (("questions", asked), ("filtered searches", _filtered(asked, indexes["new"]))):
        times, mismatches = _time_searches(indexes, searches, reps)
        print(f"{len(searches)} {kind}, k={K}, median of {reps} reps each, mismatches with FTS5: {mismatches}")
        for name, values in times.items():
            print(
                f"  {name}: lexical search ms p50 {_pct(values, 50):.1f} p95 {_pct(values, 95):.1f} "
                f"mean {statistics.mean(values):.1f} max {max(values):.1f}"
            )
    if asks:
        _compare_asks(folder, url, old_module, [q for q, _ in asked], reps)
    database.dispose()


def _time_searches(indexes: dict, searches: list[tuple[str, dict]], reps: int) -> tuple[dict[str, list[float]], int]:
    """Each search's median time (ms) per index, the indexes taking turns; and how many
    searches of the PostgreSQL indexes did not return FTS5's hits and scores."""
    times: dict[str, list[float]] = {name: [] for name in indexes}
    mismatches = 0
    for question, filters in searches:
        expected = indexes["fts5"].search(question, K, **filters)
        per: dict[str, list[float]] = {name: [] for name in indexes}
        for _ in range(reps):
            for name, index in indexes.items():
                started = time.perf_counter()
                hits = index.search(question, K, **filters)
                per[name].append(time.perf_counter() - started)
                if not _same(hits, expected):
                    mismatches += 1
                    print(f"MISMATCH {name}: {question!r} {filters}", file=sys.stderr)
        for name in per:
            times[name].append(statistics.median(per[name]) * 1000)
    return times, mismatches


def _same(hits: list, expected: list) -> bool:
    """The same chunks in the same order, with the same scores (to 1e-9)."""
    return [h.chunk_id for h in hits] == [h.chunk_id for h in expected] and all(
        abs(a.score - b.score) <= 1e-9 * max(1.0, abs(b.score)) for a, b in zip(hits, expected, strict=True)
    )


def _filtered(asked: list[tuple[str, dict]], index) -> list[tuple[str, dict]]:
    """Some of the questions again with each kind of filter."""
    from sqlalchemy import text

    articles = index.database.read(
        lambda db: (
            db.execute(text("SELECT DISTINCT article_id FROM articleqa_chunks ORDER BY article_id LIMIT 400"))
            .scalars()
            .all()
        )
    )
    some = [q for q, _ in asked[::10]]
    out = []
    for i, q in enumerate(some):
        out.append((q, {"sources": ["synthetic"]}))
        out.append((q, {"published_from": 737100 + i, "published_to": 737300 + i}))
        out.append((q, {"article_ids": articles[i::7]}))
    return out


def _compare_asks(folder: Path, url: str, old_module: ModuleType, asked: list[str], reps: int) -> None:
    """Whole `retrieve` + `answer_from` per question, with the old and the new lexical search."""
    from articleqa.qa import ArticleQA

    with ArticleQA.open(folder / "index", database_url=url) as qa:
        new = qa.store.lexical
        old = old_module.PostgresLexicalIndex(qa.store.database)
        qa.ask("warm up question about the news")
        times: dict[str, list[float]] = {"old": [], "new": []}
        for question in asked:
            per = {"old": [], "new": []}
            for _ in range(reps):
                for name, index in (("old", old), ("new", new)):
                    qa.store.lexical = index
                    qa.retriever.store.lexical = index
                    started = time.perf_counter()
                    qa.answer_from(question, qa.retrieve(question))
                    per[name].append(time.perf_counter() - started)
            for name in per:
                times[name].append(statistics.median(per[name]) * 1000)
        qa.store.lexical = new
        for name, values in times.items():
            print(f"  {name}: ask ms p50 {_pct(values, 50):.1f} p95 {_pct(values, 95):.1f} ({len(values)} questions)")


def _pct(values: list[float], p: int) -> float:
    from articleqa.qa.evaluation import percentile

    return percentile(values, p)


def stop(folder: Path) -> None:
    from tests.postgres_server import _as_user, postgres_bin

    data = json.loads((folder / "server.json").read_text())["data"]
    subprocess.run(_as_user([str(postgres_bin() / "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"]), check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("folder", type=Path)
    b.add_argument("--size", type=int, default=3000)
    c = sub.add_parser("compare")
    c.add_argument("folder", type=Path)
    c.add_argument("old", type=Path)
    c.add_argument("--reps", type=int, default=3)
    c.add_argument("--asks", action="store_true")
    s = sub.add_parser("stop")
    s.add_argument("folder", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    if args.command == "build":
        build(args.folder, args.size)
    elif args.command == "compare":
        compare(args.folder, args.old, args.reps, args.asks)
    else:
        stop(args.folder)


if __name__ == "__main__":
    main()
