"""Benchmarks (not tests): indexing speed against the LangChain recipe, re-run cost, ask latency,
latency and quality against corpus size, `serve`'s memory, and concurrent users through `/ask`.

    python -m bench.run_all [--articles examples/articles] [--questions tests/data/eval.jsonl]
                            [--sizes 300,1000,3000] [--load-users 20] [--load-seconds 30]
                            [--precision-articles 150] [--precision-repeats 3]

Each measurement runs in a fresh subprocess so its peak memory (ru_maxrss) is its own.
Results go to bench/results.json, docs/BENCHMARKS.md and docs/latency-vs-size.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from articleqa.index.precision import choose_precision, cpu_info
from bench.precision import measure_cold_start, measure_precisions

ROOT = Path(__file__).resolve().parent.parent


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_ours(articles: str, index_dir: str) -> dict:
    from articleqa.index import index_paths, load_articles, open_index

    n_articles = len(load_articles([articles]).articles)
    store = open_index(index_dir)
    store.embeddings.encode(["warm up"])  # model load is not indexing speed
    started = time.perf_counter()
    report = index_paths(store, [articles])
    full = time.perf_counter() - started
    started = time.perf_counter()
    again = index_paths(store, [articles])
    rerun = time.perf_counter() - started
    store.close()
    assert again.chunks_added == 0
    return {
        "articles": n_articles,
        "chunks": report.chunks_added,
        "seconds": round(full, 2),
        "articles_per_s": round(n_articles / full, 2),
        "chunks_per_s": round(report.chunks_added / full, 2),
        "unchanged_rerun_seconds": round(rerun, 3),
        "unchanged_rerun_share": round(rerun / full, 4),
        "peak_rss_mb": round(_peak_mb()),
    }


def measure_baseline(articles: str) -> dict:
    from articleqa.index import get_embeddings, load_articles
    from articleqa.qa.baseline import BaselineRecipe

    loaded = load_articles([articles]).articles
    embeddings = get_embeddings(backend="torch")  # the recipe as published: PyTorch
    embeddings.encode(["warm up"])
    recipe = BaselineRecipe(embeddings)
    seconds = recipe.index(loaded)
    chunks = recipe.chunk_count()
    recipe.close()
    return {
        "articles": len(loaded),
        "chunks": chunks,
        "seconds": round(seconds, 2),
        "articles_per_s": round(len(loaded) / seconds, 2),
        "chunks_per_s": round(chunks / seconds, 2),
        "peak_rss_mb": round(_peak_mb()),
    }


def measure_ask(index_dir: str, questions: str) -> dict:
    from articleqa.qa import ArticleQA
    from articleqa.qa.evaluation import load_questions

    qs = load_questions(questions)
    with ArticleQA.open(index_dir) as qa:
        qa.ask("warm up question about the news")
        times = []
        for q in qs:
            started = time.perf_counter()
            qa.ask(q.question, today=q.question_date)
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "questions": len(times),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], 1),
        "peak_rss_mb": round(_peak_mb()),
    }


def measure_scale(size: str, workdir: str, serve: str) -> dict:
    from bench.scaling import measure_serve, measure_size

    index_dir = str(Path(workdir) / f"index-{size}")
    result = measure_size(int(size), index_dir)
    if serve == "serve":
        result["serve"] = measure_serve(index_dir)
    return result


def measure_concurrent(index_dir: str, users: str, seconds: str) -> dict:
    from bench.load import measure_load

    return measure_load(int(users), float(seconds), index_dir=index_dir)


def _child(kind: str, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.run_all", "--child", kind, *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _markdown(results: dict) -> str:
    ours, base, ask = results["index_ours"], results["index_baseline"], results["ask"]
    m = results["machine"]
    text = f"""# Benchmarks

Measured {results["date"]} on {m["cpus"]} CPU cores: {m.get("cpu") or m["processor"]}; Python
{m["python"]}, no GPU, with `python -m bench.run_all` (`make bench`). The flags in brackets are
the CPU's instructions that decide the embedding precision (index/precision.py); `auto` chose
**{m.get("auto_precision", "?")}** here. Articles: `{results["articles"]}`; questions:
`{results["questions"]}`. Each row ran in its own process. Article QA ran the embedding model
on OpenVINO (the default `embedding_backend=auto`); the recipe ran it on PyTorch through
sentence-transformers, as published. Same model, same weights.

## Indexing

| system | articles | chunks | seconds | articles/s | chunks/s | peak RSS |
| --- | --- | --- | --- | --- | --- | --- |
| Article QA (`articleqa index`) | {ours["articles"]} | {ours["chunks"]} | {ours["seconds"]} | {ours["articles_per_s"]} | {ours["chunks_per_s"]} | {ours["peak_rss_mb"]} MB |
| LangChain recipe (1000/200 splitter, Chroma.from_documents) | {base["articles"]} | {base["chunks"]} | {base["seconds"]} | {base["articles_per_s"]} | {base["chunks_per_s"]} | {base["peak_rss_mb"]} MB |

Ratio of articles/s, ours to the recipe's: **{results["index_ratio"]}**. An unchanged re-run
took {ours["unchanged_rerun_seconds"]} s, {100 * ours["unchanged_rerun_share"]:.2f}% of the full index.

## Asking (warm, extractive answerer)

| corpus | questions | p50 | p95 | peak RSS |
| --- | --- | --- | --- | --- |
| {ours["articles"]} articles | {ask["questions"]} | {ask["p50_ms"]} ms | {ask["p95_ms"]} ms | {ask["peak_rss_mb"]} MB |
"""
    precisions = results.get("precisions")
    if precisions:
        rows = "\n".join(
            f"| Article QA, {name} | {r['median_s']} s | {', '.join(str(x) for x in r['runs_s'])} | **{r['ratio']}x** |"
            for name, r in precisions["ours"].items()
        )
        recipe = precisions["recipe"]
        text += f"""
## Indexing per precision, whole processes (`bench/precision.py`)

The first {precisions["articles"]} MultiHop-RAG news articles (ODC-BY), indexed by a fresh process
each time (imports, model load and writes included), {precisions["repeats"]} rounds alternating
the recipe and each precision; the export and int8 quantization were made before timing.
Precisions other than `auto`'s were forced with `ARTICLEQA_EMBEDDING_PRECISION`, so a machine
with bfloat16 also reports the paths CPUs without it take (int8 needs VNNI to be fast:
{"present" if m.get("vnni") else "absent"} here).

| system | median | runs | recipe's time / ours |
| --- | --- | --- | --- |
| LangChain recipe (PyTorch fp32) | {recipe["median_s"]} s | {", ".join(str(x) for x in recipe["runs_s"])} | 1.0x |
{rows}
"""
    cold = results.get("cold_start")
    if cold:
        text += f"""
## Cold start

Median of {cold["repeats"]} fresh processes, the model's export already cached (as after the first
use on a machine): `articleqa --help` {cold["help_s"]} s; `articleqa ask "..."` on the
{ours["articles"]}-article index, start to exit, {cold["ask_s"]} s.
"""
    scaling = results.get("scaling") or []
    if scaling:
        rows = "\n".join(
            f"| {r['articles']:,} | {r['chunks']:,} | {r['index_seconds']} s ({r['articles_per_s']}/s) | "
            f"{r['questions']} ({r.get('long_questions', 0)} long) | {r['p50_ms']} ms | {r['p95_ms']} ms | "
            f"{r.get('long_p50_ms') or '-'} / {r.get('long_p95_ms') or '-'} ms | "
            f"{r['answer_hit_at_1']} | {r['answer_accuracy']} | {r['peak_rss_mb']} MB |"
            for r in scaling
        )
        text += f"""
## Against corpus size

The bundled articles, from 1,000 articles on the 609 MultiHop-RAG articles (ODC-BY) too, plus
synthetic distractors made of paragraphs of other Wikinews articles (`bench/scaling.py`
explains them). Questions: tests/data/eval.jsonl at each size, plus long MultiHop-RAG
reporting questions where its articles are indexed; p50/p95 are over all of them, "long" over
the MultiHop-RAG ones alone. Quality columns are tests/data/eval.jsonl's answerable questions.

| articles | chunks | indexing | questions | ask p50 | ask p95 | long p50 / p95 | answer hit@1 | answer accuracy | peak RSS |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{rows}

![ask latency against corpus size](latency-vs-size.png)
"""
        serve = scaling[-1].get("serve")
        if serve:
            text += f"""
## `serve` memory

`articleqa serve` on the {scaling[-1]["articles"]:,}-article index, after answering
{serve["questions_asked"]} questions through its `/ask` endpoint ({serve["grounded_answers"]}
grounded): resident {serve["rss_mb"]} MB, peak (VmHWM) {serve["peak_rss_mb"]} MB.
"""
    load = results.get("load")
    if load:
        shown = ", ".join(load["error_messages"][:3]) or "none"
        text += f"""
## Concurrent users (`bench/load.py`)

{load["users"]} users for {load["seconds"]:g} s, each a thread with its own `gradio_client.Client`
asking tests/data/eval.jsonl's questions in a loop through the `/ask` endpoint of a real
`articleqa serve` on 127.0.0.1 ({ours["articles"]} articles; the app's concurrency settings as
they are). Latency is what a user waits, queueing included. The load generator shares the
{load["cpu"]["cpus"]} cores with the server: it used {load["load_generator_cpu_s"]} s of CPU, the
server {load.get("server_cpu_s")} s.

| requests | errors | requests/s | p50 | p95 | p99 | max | requests per user (min-max) |
| --- | --- | --- | --- | --- | --- | --- | --- |
| {load["requests"]} | {load["errors"]} | {load["requests_per_s"]} | {load["p50_ms"]} ms | {load["p95_ms"]} ms | {load["p99_ms"]} ms | {load["max_ms"]} ms | {load["requests_per_user_min"]}-{load["requests_per_user_max"]} |

Errors: {shown}.
"""
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", default="examples/articles")
    parser.add_argument("--questions", default="tests/data/eval.jsonl")
    parser.add_argument("--sizes", default="300,1000,3000", help="Corpus sizes for the scaling runs ('' skips them).")
    parser.add_argument(
        "--load-users", type=int, default=20, help="Concurrent users through /ask (0 skips the load run)."
    )
    parser.add_argument("--load-seconds", type=float, default=30.0)
    parser.add_argument(
        "--precision-articles", type=int, default=150, help="News articles per whole-process indexing run."
    )
    parser.add_argument(
        "--precision-repeats", type=int, default=3, help="Rounds of the per-precision runs (0 skips them)."
    )
    parser.add_argument(
        "--render", action="store_true", help="Only rewrite docs/BENCHMARKS.md from bench/results.json and NOTES.md."
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.render:
        _write_docs(json.loads((ROOT / "bench" / "results.json").read_text(encoding="utf-8")))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    if args.child:
        kind, *rest = args.child
        fn = {
            "ours": measure_ours,
            "baseline": measure_baseline,
            "ask": measure_ask,
            "scale": measure_scale,
            "load": measure_concurrent,
        }[kind]
        print(json.dumps(fn(*rest)))
        return
    with tempfile.TemporaryDirectory(prefix="articleqa-bench-") as tmp:
        index_dir = str(Path(tmp) / "index")
        ours = _child("ours", args.articles, index_dir)
        base = _child("baseline", args.articles)
        ask = _child("ask", index_dir, args.questions)
        cold = measure_cold_start(Path(index_dir))
        load = _child("load", index_dir, str(args.load_users), str(args.load_seconds)) if args.load_users > 0 else None
        sizes = [s for s in args.sizes.split(",") if s.strip()]
        scaling = [
            _child("scale", size, tmp, "serve" if i == len(sizes) - 1 else "no-serve") for i, size in enumerate(sizes)
        ]
    precisions = (
        measure_precisions(args.precision_articles, args.precision_repeats) if args.precision_repeats > 0 else None
    )
    cpu = cpu_info()
    results = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": {
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "processor": cpu.model or platform.processor(),
            "cpu": cpu.summary(),
            "bf16": cpu.has_bf16,
            "vnni": cpu.has_vnni,
            "auto_precision": choose_precision("auto", cpu),
            "python": platform.python_version(),
        },
        "articles": args.articles,
        "questions": args.questions,
        "index_ours": ours,
        "index_baseline": base,
        "index_ratio": round(ours["articles_per_s"] / base["articles_per_s"], 2),
        "ask": ask,
        "cold_start": cold,
        "precisions": precisions,
        "scaling": scaling,
        "load": load,
    }
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if scaling:
        from bench.scaling import plot

        plot(scaling, ROOT / "docs" / "latency-vs-size.png")
    _write_docs(results)
    print(json.dumps(results, indent=2))


def _write_docs(results: dict) -> None:
    notes = ROOT / "bench" / "NOTES.md"  # hand-written: targets, caveats, next steps
    extra = "\n" + notes.read_text(encoding="utf-8") if notes.exists() else ""
    (ROOT / "docs" / "BENCHMARKS.md").write_text(_markdown(results) + _server_mode() + extra, encoding="utf-8")


def _server_mode() -> str:
    """The table of `python -m bench.server_mode` (its own run: it takes the better part of an
    hour), when it has been run."""
    from bench.server_mode import RESULTS, markdown

    if not RESULTS.exists():
        return ""
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    when = results.get("date", "")
    machine = results.get("cpu", "")
    return (
        f"\n## Server mode: a Chroma server and PostgreSQL ({when})\n\n"
        "`python -m bench.server_mode`: the scaling corpus indexed into an index folder (embedded) and "
        "into a `chroma run` server and a PostgreSQL database started on 127.0.0.1 (server), each "
        "in a fresh process, the same questions asked of both. The servers share the two cores "
        f"with the indexer and the questions. CPU: {machine}.\n\n" + markdown(results) + "\n"
    )


if __name__ == "__main__":
    main()
