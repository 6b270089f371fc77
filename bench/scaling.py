"""Ask latency and answer quality as the corpus grows, and `serve`'s memory on the largest.

Corpora of 300, 1,000 and 3,000 articles: the bundled examples (the RT seed and 291 Wikinews
articles, which hold every answer of tests/data/eval.jsonl), from 1,000 articles on also the
609 MultiHop-RAG articles (Tang and Yang, COLM 2024, ODC-BY 1.0) whose reporting questions are
long, multi-source news questions, plus synthetic distractors. Questions: tests/data/eval.jsonl,
and where the MultiHop-RAG articles are indexed, the first `LONG_QUESTIONS` questions of its
reporting part as well (long questions are the slow ones: more terms, more clauses, sources). A
distractor is 6 to 12 paragraphs drawn at random from random Wikinews articles, under a title,
date and id of its own: realistic news text on the same topics, often repeating the very
paragraph that answers a question (a hard case for retrieval: exact duplicates in other
articles). They exist only to measure how time and quality change with size; they are made
from a fixed seed, so every run measures the same corpora.

Run through `python -m bench.run_all` (all sizes; each in a fresh process, so peak memory is
its own), or one size: `python -m bench.scaling 1000 [auto|fp32|bf16|int8]` (the embedding
precision for indexing and asking; `auto` by default, what the CPU runs fastest).
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "articles"
CORPUS = EXAMPLES / "wikinews-2019-2020.jsonl"
QUESTIONS = ROOT / "tests" / "data" / "eval.jsonl"
MULTIHOP = ROOT / "tests" / "data" / "multihop-rag"
LONG_QUESTIONS = 200
SIZES = (300, 1000, 3000)
SEED = 20261126
FILE_ROWS = 2000  # distractors per JSON Lines file (each well under ARTICLEQA_MAX_INPUT_MB)


def distractors(count: int, seed: int = SEED) -> list[dict]:
    """`count` synthetic articles in the eval's article format (see the module docstring)."""
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    paragraphs = [[p for p in row["body"].split("\n") if len(p.split()) >= 8] for row in rows]
    paragraphs = [ps for ps in paragraphs if ps]
    rng = random.Random(seed)
    start = date(2019, 1, 1)
    made = []
    for i in range(count):
        body = []
        for _ in range(rng.randint(6, 12)):
            body.append(rng.choice(rng.choice(paragraphs)))
        made.append(
            {
                "id": f"synthetic-{i:05d}",
                "title": f"Synthetic distractor {i}",
                "source": "synthetic",
                "published_at": (start + timedelta(days=rng.randrange(730))).isoformat(),
                "url": None,
                "body": "\n".join(body),
            }
        )
    return made


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_size(
    size: int,
    index_dir: str,
    *,
    chroma_url: str | None = None,
    database_url: str | None = None,
    precision: str = "auto",
) -> dict:
    """Index the corpus of `size` articles into `index_dir` (or the Chroma server and database
    given: server mode, `bench.server_mode`) with the embedding `precision`, then ask every
    eval question."""
    from articleqa.index import index_paths, open_index
    from articleqa.qa import ArticleQA
    from articleqa.qa.evaluation import evaluate, load_questions

    real = 1 + sum(1 for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip())
    multihop_articles = MULTIHOP / "articles.jsonl"
    multihop_count = sum(1 for line in multihop_articles.read_text(encoding="utf-8").splitlines() if line.strip())
    with_multihop = size >= real + multihop_count
    inputs = [EXAMPLES] + ([multihop_articles] if with_multihop else [])
    real += multihop_count if with_multihop else 0
    if size < real:
        raise ValueError(f"size {size} is below the {real} real articles every corpus holds")
    Path(index_dir).parent.mkdir(parents=True, exist_ok=True)
    # Files of at most FILE_ROWS articles: 10,000 distractors in one file pass the input size cap.
    made = distractors(size - real)
    feeds = []
    for at in range(0, len(made), FILE_ROWS):
        feed = Path(index_dir).parent / f"distractors-{size}-{at // FILE_ROWS:02d}.jsonl"
        feed.write_text("".join(json.dumps(row) + "\n" for row in made[at : at + FILE_ROWS]), encoding="utf-8")
        feeds.append(feed)
    servers = {"chroma_url": chroma_url, "database_url": database_url}
    store = open_index(index_dir, embedding_precision=precision, **servers)
    store.embeddings.encode(["warm up"])
    started = time.perf_counter()
    report = index_paths(store, [*inputs, *feeds])
    index_seconds = time.perf_counter() - started
    articles = store.articles.count()
    store.close()
    if report.failed or articles != size:
        raise RuntimeError(f"indexing the {size}-article corpus failed: {report.failed[:3]}, {articles} articles")

    questions = load_questions(QUESTIONS)
    long_questions = load_questions(MULTIHOP / "questions-report.jsonl")[:LONG_QUESTIONS] if with_multihop else []
    with ArticleQA.open(index_dir, embedding_precision=precision, **servers) as qa:
        qa.ask("warm up question about the news")

        def ask(question, today):
            result = qa.retrieve(question, today=today)
            return qa.answer_from(question, result), result.passages

        evaluation = evaluate(ask, questions, k=qa.retriever.k)
        long_eval = evaluate(ask, long_questions, k=qa.retriever.k) if long_questions else None
    overall, factoid = evaluation.overall, evaluation.by_type["factoid"]
    every = [r.seconds * 1000 for r in evaluation.results + (long_eval.results if long_eval else [])]
    from articleqa.qa.evaluation import percentile

    return {
        "articles": size,
        "precision": precision,
        "chunks": report.chunks_added,
        "index_seconds": round(index_seconds, 1),
        "articles_per_s": round(size / index_seconds, 2),
        "questions": len(every),
        "long_questions": len(long_questions),
        "p50_ms": round(percentile(every, 50), 1),
        "p95_ms": round(percentile(every, 95), 1),
        "eval_p50_ms": overall.latency_p50_ms,
        "long_p50_ms": long_eval.overall.latency_p50_ms if long_eval else None,
        "long_p95_ms": long_eval.overall.latency_p95_ms if long_eval else None,
        "answer_hit_at_1": factoid.answer_hit_at_1,
        "answer_accuracy": factoid.answer_accuracy,
        "peak_rss_mb": round(_peak_mb()),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure_serve(index_dir: str, questions: int = 20) -> dict:
    """`articleqa serve` on `index_dir`: resident memory after answering through `/ask`."""
    from gradio_client import Client

    from articleqa.qa.evaluation import load_questions

    port = _free_port()
    script = Path(sys.executable).with_name("articleqa")
    proc = subprocess.Popen(
        [str(script), "serve", "--index-dir", index_dir, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        client = None
        while client is None:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not come up within 180 s")
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(1)
        asked = load_questions(QUESTIONS)[:questions]
        grounded = sum(bool(client.predict(q.question, api_name="/ask")["grounded"]) for q in asked)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        fields = {
            line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith(("VmHWM", "VmRSS"))
        }
        return {
            "questions_asked": len(asked),
            "grounded_answers": grounded,
            "rss_mb": round(int(fields["VmRSS"]) / 1024),
            "peak_rss_mb": round(int(fields["VmHWM"]) / 1024),
        }
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def plot(rows: list[dict], path: Path) -> None:
    """Latency (p50, p95) against corpus size, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["articles"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.plot(sizes, [r["p50_ms"] for r in rows], marker="o", label="p50")
    ax.plot(sizes, [r["p95_ms"] for r in rows], marker="o", label="p95")
    ax.axhline(100, color="tab:blue", linestyle=":", linewidth=1, label="p50 target (100 ms)")
    ax.axhline(250, color="tab:orange", linestyle=":", linewidth=1, label="p95 target (250 ms)")
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
    ax.set_xlabel("articles in the index")
    ax.set_ylabel("ask latency (ms, warm)")
    ax.set_ylim(bottom=0)
    ax.set_title("Article QA: ask latency against corpus size (2 CPU cores)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    size = int(sys.argv[1]) if len(sys.argv) > 1 else SIZES[0]
    precision = sys.argv[2] if len(sys.argv) > 2 else "auto"
    with tempfile.TemporaryDirectory(prefix="articleqa-scaling-") as tmp:
        result = measure_size(size, str(Path(tmp) / "index"), precision=precision)
        result["serve"] = measure_serve(str(Path(tmp) / "index"))
        print(json.dumps(result))


if __name__ == "__main__":
    main()
