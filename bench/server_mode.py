"""Server mode (a Chroma server and PostgreSQL) against embedded mode, at 3,000 and 10,000 articles.

For each corpus size, the same corpus as `bench.scaling` (the bundled examples, the 609
MultiHop-RAG articles (Tang and Yang, COLM 2024, ODC-BY 1.0) and seeded synthetic distractors)
is indexed twice, each in a fresh process: once into an index folder (embedded Chroma, SQLite),
once into a `chroma run` server and a PostgreSQL database started here on 127.0.0.1 (the same
throwaway server the tests use, `tests/postgres_server.py`), and the same questions are asked
of both (tests/data/eval.jsonl and 200 long MultiHop-RAG reporting questions). The servers run
on the same two cores as the indexer and the questions, so the server rows carry the servers'
own CPU time as well as the round trips: what one machine running everything sees, not a
deployment with the servers elsewhere.

    python -m bench.server_mode [--sizes 3000,10000]

Writes `bench/server_mode.json`; `python -m bench.run_all --render` puts it in
docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "server_mode.json"
SIZES = "3000,10000"


def _child(size: int, index_dir: Path, chroma_url: str = "", database_url: str = "") -> dict:
    """One size in one mode, in a fresh process (`bench.scaling.measure_size`)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.server_mode", "--child", str(size), str(index_dir), chroma_url, database_url],
        stdout=subprocess.PIPE,  # stderr passes through: a failing child says why
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(sizes: list[int]) -> dict:
    """Embedded and server mode per size (see the module docstring)."""
    from tests.postgres_server import start_chroma, start_postgres

    rows = []
    with tempfile.TemporaryDirectory(prefix="articleqa-server-mode-") as tmp:
        work = Path(tmp)
        postgres = start_postgres(work / "postgres")
        try:
            for size in sizes:
                embedded = _child(size, work / f"embedded-{size}")
                chroma, chroma_url = start_chroma(work / f"chroma-{size}")
                try:
                    database_url = postgres.create_database(f"bench_{size}")
                    server = _child(size, work / f"server-{size}", chroma_url, database_url)
                finally:
                    chroma.terminate()
                    chroma.wait(timeout=60)
                rows.append({"articles": size, "date": _today(), "embedded": embedded, "server": server})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # kept if a later size fails
        finally:
            postgres.stop()
    from articleqa.index.precision import cpu_info

    return {"date": _today(), "cpu": cpu_info().summary(), "sizes": sizes, "rows": rows}


def _today() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%d")


def merged(old: dict | None, new: dict) -> dict:
    """`new`'s rows, plus `old`'s rows of the sizes `new` did not measure (each row keeps the
    date it was measured), by size: a run of one size keeps the others' numbers."""
    if not old:
        return new
    rows = {row["articles"]: {"date": old.get("date"), **row} for row in old.get("rows", [])}
    rows.update({row["articles"]: row for row in new["rows"]})
    return {**new, "sizes": sorted(rows), "rows": [rows[size] for size in sorted(rows)]}


def markdown(results: dict) -> str:
    """The table for docs/BENCHMARKS.md."""
    lines = [
        "| articles | mode | indexing articles/s | ask p50 / p95 ms (all questions) | long questions p50 / p95 ms | answer accuracy (eval.jsonl) | measured |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in results["rows"]:
        for mode in ("embedded", "server"):
            r = row[mode]
            lines.append(
                f"| {row['articles']:,} | {mode} | {r['articles_per_s']} | {r['p50_ms']} / {r['p95_ms']} | "
                f"{r['long_p50_ms']} / {r['long_p95_ms']} | {r['answer_accuracy']} | {row.get('date', results.get('date', ''))} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=SIZES, help="Corpus sizes, comma-separated (each at least 901).")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    if args.child:
        from bench.scaling import measure_size

        size, index_dir, chroma_url, database_url = args.child
        result = measure_size(int(size), index_dir, chroma_url=chroma_url or None, database_url=database_url or None)
        print(json.dumps(result))
        return
    old = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else None
    results = merged(old, measure([int(s) for s in args.sizes.split(",") if s.strip()]))
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(markdown(results))


if __name__ == "__main__":
    main()
