"""Whole-process indexing per embedding precision against the LangChain recipe, and cold starts.

Every run is a fresh process timed by the wall clock from start to exit, so imports, model
loading and writing count as a user sees them: `articleqa index` for Article QA (with
`ARTICLEQA_EMBEDDING_PRECISION` set to each precision this CPU can run), and
`python -m bench.precision recipe` for the recipe (1000/200 splitter, sentence-transformers
on PyTorch, Chroma). Runs alternate between the recipe and each precision, so a change in
the machine's speed during the run (other load, clock boost) reaches all of them alike; the
tables give medians. The OpenVINO export and the int8 quantization are made before timing (a
first, untimed run per precision): they happen once per machine.

The articles are the first N of the 609 MultiHop-RAG news articles (tests/data/multihop-rag/,
ODC-BY; credit in its LICENSE-NOTE.txt): real news of realistic length.

    python -m bench.precision [--articles 150] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from articleqa.index.precision import cpu_info

ROOT = Path(__file__).resolve().parent.parent
NEWS = ROOT / "tests" / "data" / "multihop-rag" / "articles.jsonl"
ARTICLEQA = Path(sys.executable).with_name("articleqa")
COLD_QUESTION = "Who called the meeting a waste of time?"


def runnable_precisions() -> list[str]:
    """fp32 and int8 run on every x86 CPU (int8 fast only with VNNI); bf16 only where present."""
    return ["fp32", "int8", *(["bf16"] if cpu_info().has_bf16 else [])]


def news_subset(n: int, path: Path) -> Path:
    """The first `n` MultiHop-RAG articles as a JSON Lines file."""
    lines = NEWS.read_text(encoding="utf-8").splitlines()[:n]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - started


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTICLEQA_")}
    env.update({"HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}, **extra)
    return env


def _index_command(articles: Path, index_dir: Path) -> list[str]:
    return [str(ARTICLEQA), "index", str(articles), "--index-dir", str(index_dir), "--quiet"]


def measure_precisions(articles: int = 150, repeats: int = 3, precisions: list[str] | None = None) -> dict:
    """Median whole-process seconds per precision and for the recipe, and their ratios."""
    precisions = precisions or runnable_precisions()
    with tempfile.TemporaryDirectory(prefix="articleqa-precision-") as tmp:
        work = Path(tmp)
        feed = news_subset(articles, work / "news.jsonl")
        one = news_subset(1, work / "one.jsonl")
        for precision in precisions:  # export and quantize once, untimed
            env = _environment(ARTICLEQA_EMBEDDING_PRECISION=precision)
            _timed(_index_command(one, work / f"warm-{precision}"), env)
        runs: dict[str, list[float]] = {name: [] for name in ["recipe", *precisions]}
        for round_ in range(repeats):
            runs["recipe"].append(
                _timed([sys.executable, "-m", "bench.precision", "recipe", str(feed)], _environment())
            )
            for precision in precisions:
                env = _environment(ARTICLEQA_EMBEDDING_PRECISION=precision)
                runs[precision].append(_timed(_index_command(feed, work / f"{precision}-{round_}"), env))
    recipe = statistics.median(runs["recipe"])
    return {
        "articles": articles,
        "repeats": repeats,
        "cpu": cpu_info().summary(),
        "recipe": {"median_s": round(recipe, 2), "runs_s": [round(s, 2) for s in runs["recipe"]]},
        "ours": {
            p: {
                "median_s": round(statistics.median(runs[p]), 2),
                "runs_s": [round(s, 2) for s in runs[p]],
                "ratio": round(recipe / statistics.median(runs[p]), 2),
            }
            for p in precisions
        },
    }


def measure_cold_start(index_dir: Path, repeats: int = 5) -> dict:
    """Median wall seconds of `articleqa --help` and of one `articleqa ask` in a fresh process
    (the model's export already cached, as after the first use on a machine)."""
    env = _environment()
    help_runs = [_timed([str(ARTICLEQA), "--help"], env) for _ in range(repeats)]
    ask = [str(ARTICLEQA), "ask", COLD_QUESTION, "--index-dir", str(index_dir)]
    _timed(ask, env)  # the first ask on a machine exports the model: not a cold start
    ask_runs = [_timed(ask, env) for _ in range(repeats)]
    return {
        "help_s": round(statistics.median(help_runs), 2),
        "ask_s": round(statistics.median(ask_runs), 2),
        "repeats": repeats,
    }


def _recipe(articles: str) -> None:
    """One whole recipe run (the child process the timings above measure)."""
    from articleqa.index import get_embeddings, load_articles
    from articleqa.qa.baseline import BaselineRecipe

    loaded = load_articles([articles]).articles
    recipe = BaselineRecipe(get_embeddings(backend="torch"))
    recipe.index(loaded)
    recipe.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.child[0] == "recipe":
        _recipe(args.child[1])
        return
    print(json.dumps(measure_precisions(args.articles, args.repeats), indent=2))


if __name__ == "__main__":
    main()
