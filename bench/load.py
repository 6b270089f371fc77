"""Load: simulated users asking at once through the `/ask` endpoint of a real `articleqa serve`.

    python -m bench.load [--users 20] [--seconds 30] [--index-dir D] [--ask-concurrency N]

The example articles are indexed with `articleqa index` into a temporary folder (or `--index-dir`
is served as it is), `articleqa serve` starts on 127.0.0.1 in its own process, and each user is
a thread with its own `gradio_client.Client` that asks the questions of tests/data/eval.jsonl
one after another, without pause, for the given time. Every request's latency (as the user
sees it: queueing in the server included) and every error are recorded. Requests started
before the deadline are finished and counted; requests/s is over the time until the last one
finished. The load generator runs on the same machine (same cores) as the server, so the
numbers are a floor of what the server alone would do.

`--ask-concurrency N` serves with `/ask`'s concurrency_limit replaced by N (ui/app.py has 4), to
compare settings without editing the app. The result is one JSON object (printed, and returned
by `measure_load`).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTICLES = ROOT / "examples" / "articles"
QUESTIONS = ROOT / "tests" / "data" / "eval.jsonl"
START_TIMEOUT = 180.0  # serve's start: model load (and, on a fresh cache, the OpenVINO export)
REQUEST_GRACE = 120.0  # a request still running this long after the deadline counts as an error
KEEP_ERRORS = 5

# Serve with `/ask`'s concurrency_limit replaced (argv[1]); the rest of argv is `articleqa`'s.
_PATCHED_SERVE = """
import sys
import gradio
limit = int(sys.argv.pop(1))
_api = gradio.api
def api(fn, *args, **kwargs):
    if kwargs.get("api_name") == "ask":
        kwargs["concurrency_limit"] = limit
    return _api(fn, *args, **kwargs)
gradio.api = api
from articleqa.ui.cli import main
sys.argv[0] = "articleqa"
main()
"""


def cpu_info() -> dict:
    """The CPU's model name and whether it has the bfloat16 instructions OpenVINO uses."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    lines = info.splitlines()
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    flags = next((set(ln.split(":", 1)[1].split()) for ln in lines if ln.startswith("flags")), set())
    return {
        "model": model,
        "cpus": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx": bool(flags & {"amx_bf16", "amx_tile", "amx_int8"}),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _articleqa() -> str:
    return str(Path(sys.executable).with_name("articleqa"))


def index_examples(index_dir: Path, articles: Path = ARTICLES) -> None:
    """`articleqa index ARTICLES --index-dir INDEX_DIR`, as `make index` runs it."""
    done = subprocess.run(
        [_articleqa(), "index", str(articles), "--index-dir", str(index_dir)],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"articleqa index exited with {done.returncode}: {(done.stdout + done.stderr)[-2000:]}")


def start_serve(index_dir: Path, port: int, log: Path, ask_concurrency: int | None = None) -> subprocess.Popen:
    args = ["serve", "--index-dir", str(index_dir), "--port", str(port)]
    if ask_concurrency is None:
        command = [_articleqa(), *args]
    else:
        command = [sys.executable, "-c", _PATCHED_SERVE, str(ask_concurrency), *args]
    with open(log, "wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = START_TIMEOUT) -> float:
    """Seconds until the page answers 200; raises with serve's output if it exits or never does."""
    started = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            if urllib.request.urlopen(url, timeout=5).status == 200:
                return time.monotonic() - started
        except OSError:
            pass
        if time.monotonic() - started > timeout:
            raise RuntimeError(
                f"serve did not answer {url} within {timeout:.0f} s: {log.read_text(errors='replace')[-2000:]}"
            )
        time.sleep(0.5)


def stop_serve(proc: subprocess.Popen) -> None:
    # SIGTERM, not SIGINT: a shell without job control starts background commands with SIGINT
    # ignored, and their children inherit that. serve only reads here; nothing is lost.
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far, from /proc (None where unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float | None:
    """CPU time all processes on this machine have spent so far (not idle, not waiting)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    from articleqa.qa.evaluation import percentile

    return round(percentile(values, q), 1)


class GradioUser:
    """One user: its own `gradio_client.Client`, as an application would use the API."""

    def __init__(self, url: str):
        from gradio_client import Client

        self.client = Client(url, verbose=False, analytics_enabled=False)

    def ask(self, question: str):
        return self.client.predict(question, api_name="/ask")

    def close(self) -> None:
        self.client.close()


class HttpUser:
    """One user on Gradio's plain HTTP API (POST /gradio_api/call/ask, then read the event
    stream) over one kept-alive stdlib connection: a much lighter load generator than
    gradio_client, so that more of the shared cores go to the server."""

    def __init__(self, url: str):
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=REQUEST_GRACE)
        self.connection.request("GET", "/gradio_api/info")
        info = json.loads(self._body())
        parameters = info["named_endpoints"]["/ask"]["parameters"]
        self.defaults = [p.get("parameter_default") for p in parameters]

    def _body(self, expect: int = 200) -> bytes:
        response = self.connection.getresponse()
        body = response.read()
        if response.status != expect:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
        return body

    def ask(self, question: str):
        try:
            return self._ask(question)
        except Exception:
            self.connection.close()  # the next request reconnects instead of reusing a broken one
            raise

    def _ask(self, question: str):
        data = json.dumps({"data": [question, *self.defaults[1:]]})
        self.connection.request("POST", "/gradio_api/call/ask", body=data, headers={"Content-Type": "application/json"})
        event_id = json.loads(self._body())["event_id"]
        self.connection.request("GET", f"/gradio_api/call/ask/{event_id}")
        event, payload = None, None
        for line in self._body().decode("utf-8").splitlines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in {"complete", "error"}:
                payload = line.split(":", 1)[1].strip()
                break
        if event != "complete" or payload is None:
            raise RuntimeError(f"event {event}: {str(payload)[:200]}")
        return json.loads(payload)[0]

    def close(self) -> None:
        self.connection.close()


CLIENTS = {"gradio": GradioUser, "http": HttpUser}


def run_users(url: str, questions: list[str], users: int, seconds: float, client: str = "gradio") -> dict:
    """`users` threads, each with its own client, asking through `/ask` for `seconds`."""
    make_user = CLIENTS[client]

    lock = threading.Lock()
    latencies: list[float] = []
    per_user = [0] * users
    errors: list[str] = []
    error_count = 0
    grounded = 0
    clients: list = [None] * users
    ready = threading.Barrier(users + 1)
    deadline = [float("inf")]  # set by the main thread once every client is connected

    def user(i: int) -> None:
        nonlocal error_count, grounded
        try:
            clients[i] = make_user(url)
        except Exception as exc:  # noqa: BLE001 - a user that cannot connect is an error
            with lock:
                error_count += 1
                errors.append(f"connect: {type(exc).__name__}: {exc}"[:300])
        try:
            ready.wait(timeout=START_TIMEOUT)
        except threading.BrokenBarrierError:
            return
        me = clients[i]
        if me is None:
            return
        n = i * 7  # users start at different questions
        while time.monotonic() < deadline[0]:
            question = questions[n % len(questions)]
            n += 1
            started = time.perf_counter()
            try:
                result = me.ask(question)
                ok = isinstance(result, dict) and "grounded" in result and "text" in result
                problem = None if ok else f"unexpected result for {question!r}: {str(result)[:200]}"
            except Exception as exc:  # noqa: BLE001 - every failure is counted, none stops the run
                result, problem = None, f"{type(exc).__name__}: {exc}"[:300]
            elapsed_ms = (time.perf_counter() - started) * 1000
            with lock:
                if problem is None:
                    latencies.append(elapsed_ms)
                    per_user[i] += 1
                    grounded += bool(result["grounded"])
                else:
                    error_count += 1
                    if len(errors) < KEEP_ERRORS:
                        errors.append(problem)

    threads = [threading.Thread(target=user, args=(i,), daemon=True, name=f"user-{i}") for i in range(users)]
    for thread in threads:
        thread.start()
    try:
        ready.wait(timeout=START_TIMEOUT)
    except threading.BrokenBarrierError:
        raise RuntimeError(f"{users} clients did not connect within {START_TIMEOUT:.0f} s: {errors}") from None
    client_cpu = time.process_time()
    started = time.monotonic()
    deadline[0] = started + seconds
    for thread in threads:
        thread.join(timeout=max(0.0, started + seconds + REQUEST_GRACE - time.monotonic()))
    elapsed = time.monotonic() - started
    stuck = sum(thread.is_alive() for thread in threads)
    if stuck:
        error_count += stuck
        errors.append(f"{stuck} request(s) still running {REQUEST_GRACE:.0f} s after the deadline")
    client_cpu = time.process_time() - client_cpu
    for made in clients:
        if made is not None:
            made.close()
    return {
        "requests": len(latencies),
        "errors": error_count,
        "error_messages": errors[:KEEP_ERRORS],
        "grounded": grounded,
        "elapsed_s": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 2) if elapsed else 0.0,
        "p50_ms": _percentile(latencies, 50),
        "p95_ms": _percentile(latencies, 95),
        "p99_ms": _percentile(latencies, 99),
        "max_ms": round(max(latencies), 1) if latencies else 0.0,
        "requests_per_user_min": min(per_user) if per_user else 0,
        "requests_per_user_max": max(per_user) if per_user else 0,
        "load_generator_cpu_s": round(client_cpu, 1),
    }


def measure_load(
    users: int = 20,
    seconds: float = 30.0,
    *,
    index_dir: str | Path | None = None,
    articles: str | Path = ARTICLES,
    questions: str | Path = QUESTIONS,
    ask_concurrency: int | None = None,
    client: str = "gradio",
) -> dict:
    """Index the example articles (unless `index_dir` is given), start a real `articleqa serve`
    on 127.0.0.1, and run `users` simulated users for `seconds`. Returns a JSON-able dict."""
    from articleqa.qa.evaluation import load_questions

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # the client's telemetry thread otherwise
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # gradio_client's Client() asks huggingface.co otherwise
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    asked = [q.question for q in load_questions(questions)]
    with tempfile.TemporaryDirectory(prefix="articleqa-load-") as tmp:
        index_seconds = None
        if index_dir is None:
            index_dir = Path(tmp) / "index"
            started = time.monotonic()
            index_examples(index_dir, Path(articles))
            index_seconds = round(time.monotonic() - started, 1)
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        log = Path(tmp) / "serve.log"
        proc = start_serve(Path(index_dir), port, log, ask_concurrency)
        try:
            start_seconds = wait_until_up(url, proc, log)
            warm = CLIENTS[client](url)
            started = time.perf_counter()
            warm.ask(asked[0])  # the first question: lazy loads are not load
            warm_up_ms = round((time.perf_counter() - started) * 1000, 1)
            warm.close()
            load_before = [round(x, 2) for x in os.getloadavg()]  # others' work on these cores
            server_cpu, busy = _cpu_seconds(proc.pid), _machine_busy_seconds()
            result = run_users(url, asked, users, seconds, client)
            server_after, busy_after = _cpu_seconds(proc.pid), _machine_busy_seconds()
            if server_cpu is not None and server_after is not None:
                result["server_cpu_s"] = round(server_after - server_cpu, 1)
                if busy is not None and busy_after is not None:
                    # what else ran on these cores meanwhile (other jobs): a disturbed run shows here
                    others = busy_after - busy - result["server_cpu_s"] - result["load_generator_cpu_s"]
                    result["other_processes_cpu_s"] = round(max(0.0, others), 1)
            if proc.poll() is not None:
                raise RuntimeError(
                    f"serve exited during the run with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}"
                )
        finally:
            stop_serve(proc)
    return {
        "users": users,
        "seconds": seconds,
        "client": client,
        **result,
        "ask_concurrency_limit": ask_concurrency if ask_concurrency is not None else "ui/app.py's",
        "questions": len(asked),
        "index_seconds": index_seconds,
        "serve_start_s": round(start_seconds, 1),
        "warm_up_ms": warm_up_ms,
        "load_average_before": load_before,
        "cpu": cpu_info(),
        "note": f"the load generator (one {'gradio_client' if client == 'gradio' else 'HTTP connection'} "
        f"per user, as threads) runs on the same {os.cpu_count()} cores as the server",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--index-dir", help="Serve this index as it is instead of indexing the examples.")
    parser.add_argument("--articles", default=str(ARTICLES))
    parser.add_argument("--questions", default=str(QUESTIONS))
    parser.add_argument("--ask-concurrency", type=int, help="Replace /ask's concurrency_limit (ui/app.py: 4).")
    parser.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="gradio",
        help="gradio: gradio_client per user (default); http: plain HTTP, a lighter load generator.",
    )
    args = parser.parse_args()
    result = measure_load(
        args.users,
        args.seconds,
        index_dir=args.index_dir,
        articles=args.articles,
        questions=args.questions,
        ask_concurrency=args.ask_concurrency,
        client=args.client,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
