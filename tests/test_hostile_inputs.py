"""Hostile inputs (issue 11, part 4): one batch of them, run through the real `articleqa` CLI.

One folder and a list of files and URLs mix 40+ hostile inputs with four good articles. The
CLI runs as a subprocess, like a user would run it, with a small size cap and a short fetch
deadline; URLs are served by real HTTP servers on 127.0.0.2 (allowed) and 127.0.0.1 (an
"internal" service that must never be reached). Every hostile input must be named in
`failed` (or, for special entries met while walking a folder, `skipped`) with a clear reason;
the good articles must be indexed and answer a question; and a second identical run must add
nothing. Every subprocess has a timeout, so a hang fails the test instead of stalling it.

Decisions recorded here (also in the loaders' docstrings):
- A folder named like a file (`folder.txt/`) is a folder: it is walked.
- FIFOs, sockets, broken links and link loops found while walking are skipped (never
  opened); named directly they are failures.
- A chmod 000 file is unreadable except for root, which reads it: as root it is a good
  article and is indexed, otherwise it fails with "permission denied".
- Odd but valid file names (newlines, escapes, quotes) are read; a name that is not valid
  UTF-8 fails, because its id and origin could not be stored.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import SEED, SEED_ID
from tests.test_fetch_safety import ROUTES, Site, redirect, send

pytestmark = pytest.mark.slow

ARTICLEQA = Path(sys.executable).with_name("articleqa")
MAX_MB = 12
LIMIT = MAX_MB * 1024 * 1024
FETCH_TIMEOUT = 2
QUESTION = "Who called the meeting a waste of time?"
TEN_MB = 10 * 1024 * 1024
RUNS_AS_ROOT = os.geteuid() == 0
SCRIPTS_ONLY = b"<html><head><script>var tracking = 1;</script></head><body><script>document.write('ad')</script><noscript></noscript></body></html>"
GOOD_PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>Harbour ferry adds night crossings</title>
<link rel="canonical" href="https://harbour.example/news/night-ferry"></head><body><article>
<h1>Harbour ferry adds night crossings</h1>
<p>The harbour ferry will run three extra crossings after midnight from June, the port authority said.</p>
<p>The change follows a petition signed by 4,100 shift workers who finish late at the container terminal.</p>
</article></body></html>"""


@dataclass(frozen=True)
class Hostile:
    """One hostile input: where the report names it and a fragment its reason must hold.

    `origin` is a path relative to the batch folder (or absolute), or for URLs a template
    filled with `{news}` (the allowed site), `{internal}` (the 127.0.0.1 service) and `{iport}`.
    """

    name: str
    origin: str
    where: str  # "failed" or "skipped"
    reason: str


def _laughs() -> str:
    """YAML "billion laughs": nine levels of nine aliases each."""
    levels = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    return f"---\na: &a [x, x, x, x, x, x, x, x, x]\n{levels}title: *i\n---\nBody.\n"


# Files written into the walked folder `inbox/`: (case, content, expected reason).
FILES: list[tuple[Hostile, bytes | str | Callable[[], bytes | str]]] = [
    (Hostile("empty", "inbox/empty.txt", "failed", "file is empty"), b""),
    (Hostile("whitespace-only", "inbox/blank.md", "failed", "file is empty"), " \n\t\n  "),
    (Hostile("bom-only", "inbox/bom-only.txt", "failed", "file is empty"), b"\xef\xbb\xbf\n"),
    (
        Hostile("binary", "inbox/photo.txt", "failed", "binary file, not text"),
        lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(2000),
    ),
    (
        Hostile("gzip-named-txt", "inbox/archive.txt", "failed", "binary file, not text"),
        lambda: gzip.compress(b"Headline\nBody\n" * 100),
    ),
    (
        Hostile("nul-after-8k", "inbox/late-nul.txt", "failed", "binary file, not text"),
        "Headline\n" + "word " * 3000 + "\x00 more",
    ),
    (
        Hostile("invalid-utf8", "inbox/latin1.txt", "failed", "invalid UTF-8 at byte offset 3 (byte 0xe9)"),
        "Caf\u00e9 au lait\nprices rise\n".encode("latin-1"),
    ),
    (
        Hostile("10mb-single-line", "inbox/one-line.txt", "failed", "no article text after the headline"),
        lambda: "x" * TEN_MB,
    ),
    (
        Hostile("headline-only", "inbox/headline.md", "failed", "no article text after the headline"),
        "# Only a headline\n\n",
    ),
    (Hostile("deeply-nested-json", "inbox/deep.json", "failed", "invalid JSON: nested too deeply"), "[" * 100_000),
    (
        Hostile("deeply-nested-jsonl", "inbox/deep.jsonl", "failed", "line 1: invalid JSON: nested too deeply"),
        '{"a": ' * 100_000,
    ),
    (
        Hostile(
            "json-list-of-numbers",
            "inbox/numbers.json",
            "failed",
            "expected a JSON object or a list of objects, got a list of number",
        ),
        "[1, 2, 3]",
    ),
    (
        Hostile("json-list-of-scalars", "inbox/scalars.json", "failed", "got a list of array, boolean, null, string"),
        '["a", null, true, [1]]',
    ),
    (
        Hostile("json-scalar", "inbox/null.json", "failed", "expected a JSON object or a list of objects, got null"),
        "null",
    ),
    (Hostile("json-empty-list", "inbox/empty-list.json", "failed", "the JSON list is empty"), "[]"),
    (
        Hostile("json-truncated", "inbox/truncated.json", "failed", "invalid JSON: Unterminated string"),
        '{"title": "Cut off", "body": "The te',
    ),
    (
        Hostile(
            "json-huge-integer", "inbox/huge-int.json", "failed", "invalid JSON: a number with more than 4300 digits"
        ),
        '{"title": "T", "body": "B", "n": ' + "9" * 5000 + "}",
    ),
    (
        Hostile(
            "json-lone-surrogate", "inbox/surrogate.json", "failed", "field 'body' holds an unpaired surrogate \\ud800"
        ),
        '{"title": "T", "body": "bad \\ud800 text"}',
    ),
    (
        Hostile("json-title-object", "inbox/title-object.json", "failed", "field 'title' must be a string, got object"),
        '{"title": {"a": 1}, "body": "B"}',
    ),
    (
        Hostile(
            "jsonl-all-junk",
            "inbox/junk.jsonl",
            "failed",
            "gave up after line 20: the first 20 lines with content are all bad",
        ),
        "not json at all\n" * 5000,
    ),
    (Hostile("html-only-scripts", "inbox/scripts.html", "failed", "no article text found in the HTML"), SCRIPTS_ONLY),
    (
        Hostile("html-deeply-nested", "inbox/deep.html", "failed", "no article text found in the HTML"),
        "<html><body>" + "<div>" * 100_000 + "</body></html>",
    ),
    (Hostile("html-binary", "inbox/binary.html", "failed", "binary file, not text"), b"\x00\x01\x02" * 1000),
    (
        Hostile(
            "yaml-deeply-nested",
            "inbox/deep-yaml.md",
            "failed",
            "invalid YAML front matter: exceeded maximum nesting depth",
        ),
        "---\ntitle: " + "[" * 50_000 + "\n---\nBody text.\n",
    ),
    (Hostile("yaml-billion-laughs", "inbox/laughs.md", "failed", "field 'title' must be text, got list"), _laughs()),
    (
        Hostile(
            "front-matter-unclosed", "inbox/unclosed.md", "failed", "front matter starts with '---' but is never closed"
        ),
        "---\ntitle: Never closed\nBody text.\n",
    ),
    (
        Hostile(
            "over-the-size-cap",
            "inbox/too-big.txt",
            "failed",
            f"file is {LIMIT + 1024 + 13} bytes, over the limit of {LIMIT} (ARTICLEQA_MAX_INPUT_MB)",
        ),
        lambda: "Big headline\n" + "y" * (LIMIT + 1024),
    ),
    (
        Hostile("newline-in-name", "inbox/bad\nname.txt", "failed", "no article text after the headline"),
        "only a headline\n",
    ),
    (
        Hostile("escape-in-name", "inbox/\x1b[2Jclear.txt", "failed", "invalid UTF-8 at byte offset 0 (byte 0xff)"),
        b"\xff\xfe junk",
    ),
    (Hostile("in-a-folder-named-like-a-file", "inbox/folder.txt/inner.txt", "failed", "file is empty"), ""),
]

# Inputs that need more than writing a file (made in `make_specials`).
SPECIALS: list[Hostile] = [
    Hostile("name-not-utf8", "inbox/caf\\xe9.txt", "failed", "the file name is not valid UTF-8"),
    Hostile("fifo-in-folder", "inbox/pipe.txt", "skipped", "not a regular file: a named pipe (FIFO)"),
    Hostile("symlink-loop-in-folder", "inbox/loop-a.txt", "skipped", "symbolic link loop"),
    Hostile("symlink-loop-in-folder-2", "inbox/loop-b.txt", "skipped", "symbolic link loop"),
    Hostile("broken-symlink-in-folder", "inbox/dangling.txt", "skipped", "broken symbolic link"),
    Hostile("socket-in-folder", "inbox/socket.txt", "skipped", "not a regular file: a socket"),
    Hostile("fifo-named", "named/pipe.txt", "failed", "not a regular file: a named pipe (FIFO)"),
    Hostile("symlink-loop-named", "named/loop.txt", "failed", "symbolic link loop (too many levels of symbolic links)"),
    Hostile("missing-file", "named/missing.txt", "failed", "no such file or directory"),
    Hostile("character-device", "/dev/zero", "failed", "not a regular file: a character device"),
    Hostile("unsupported-extension", "named/paper.pdf", "failed", "unsupported file extension '.pdf'"),
]
if not RUNS_AS_ROOT:  # root reads a chmod 000 file; then it is one of the good articles
    SPECIALS.append(Hostile("unreadable", "inbox/locked.txt", "failed", "permission denied"))

HINT = "(set ARTICLEQA_ALLOW_PRIVATE_URLS=true or add it to ARTICLEQA_ALLOWED_NETWORKS to allow it)"
URLS: list[Hostile] = [
    Hostile(
        "redirect-to-loopback",
        "{news}/to-internal",
        "failed",
        f"refused: the page redirects to {{internal}}/secret; 127.0.0.1 is a loopback address {HINT}",
    ),
    Hostile(
        "never-answers",
        "{news}/never",
        "failed",
        f"timed out after {FETCH_TIMEOUT}s (the limit set by ARTICLEQA_FETCH_TIMEOUT)",
    ),
    Hostile("drip-feed", "{news}/drip", "failed", f"timed out after {FETCH_TIMEOUT}s"),
    Hostile(
        "gzip-bomb",
        "{news}/bomb",
        "failed",
        f"page (decompressed) is over the limit of {LIMIT} bytes (ARTICLEQA_MAX_INPUT_MB)",
    ),
    Hostile("too-many-redirects", "{news}/chain?n=9", "failed", "too many redirects (more than 5)"),
    Hostile("redirect-to-file-scheme", "{news}/to-file", "failed", "only http:// and https:// redirects are followed"),
    Hostile("page-with-only-scripts", "{news}/scripts", "failed", "no article text found in the HTML"),
    Hostile("not-html", "{news}/data.json", "failed", "unsupported content type 'application/json'"),
    Hostile("double-gzip", "{news}/double-gzip", "failed", "unsupported content encoding 'gzip, gzip'"),
    Hostile("loopback-url", "{internal}/secret", "failed", f"refused: 127.0.0.1 is a loopback address {HINT}"),
    Hostile(
        "localhost-url",
        "http://localhost:{iport}/secret",
        "failed",
        "refused: localhost resolves to 127.0.0.1, a loopback address",
    ),
    Hostile(
        "cloud-metadata-url",
        "http://169.254.169.254/latest/meta-data/",
        "failed",
        "refused: 169.254.169.254 is a link-local address",
    ),
    Hostile("ipv6-loopback-url", "http://[::1]:{iport}/secret", "failed", "refused: ::1 is a loopback address"),
    Hostile("private-url", "http://10.0.0.1/admin", "failed", "refused: 10.0.0.1 is a private address"),
    Hostile(
        "decimal-ip-url", "http://2130706433:{iport}/secret", "failed", "refused: 2130706433 resolves to 127.0.0.1"
    ),
    Hostile("ftp-url", "ftp://127.0.0.2/article", "failed", "unsupported URL scheme 'ftp'"),
    Hostile("file-url", "file:///etc/passwd", "failed", "unsupported URL scheme 'file'"),
]
HOSTILE: list[Hostile] = [case for case, _ in FILES] + SPECIALS + URLS


@dataclass
class Battery:
    """The two index runs and the question, and how to turn a case into its real origin."""

    root: Path
    places: dict[str, str]
    good_ids: list[str]
    first: subprocess.CompletedProcess
    second: subprocess.CompletedProcess
    answer: subprocess.CompletedProcess
    internal: Site

    def origin(self, case: Hostile) -> str:
        if case in URLS:
            return case.origin.format(**self.places)
        return str(self.root / case.origin)

    def reason(self, case: Hostile) -> str:
        return case.reason.format(**self.places) if case in URLS else case.reason

    def report(self, run: subprocess.CompletedProcess) -> dict:
        assert run.stdout.strip(), f"no JSON report; stderr:\n{run.stderr[-3000:]}"
        return json.loads(run.stdout)


def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def make_specials(root: Path) -> None:
    """FIFOs, sockets, link loops, a non-UTF-8 name and an unsupported file."""
    inbox, named = root / "inbox", root / "named"
    named.mkdir()
    with open(os.path.join(os.fsencode(inbox), b"caf\xe9.txt"), "wb") as handle:
        handle.write(b"Headline\nA valid article under a name that is not UTF-8.\n")
    os.mkfifo(inbox / "pipe.txt")
    (inbox / "loop-a.txt").symlink_to("loop-b.txt")
    (inbox / "loop-b.txt").symlink_to("loop-a.txt")
    (inbox / "dangling.txt").symlink_to("no-such-target.txt")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(inbox / "socket.txt"))
    unix.close()
    os.mkfifo(named / "pipe.txt")
    (named / "loop.txt").symlink_to("loop.txt")
    write(named / "paper.pdf", b"%PDF-1.7\n")


def make_good(root: Path) -> list[str]:
    """The good articles (the seed, an odd but valid name, a chmod 000 file); their ids."""
    inbox = root / "inbox"
    shutil.copy(SEED, inbox / SEED.name)
    odd = "Zoë's “odd” name — ok"
    write(inbox / f"{odd}.md", "# Library reopens after flood\n\nThe town library reopened on Monday after repairs.\n")
    locked = write(inbox / "locked.txt", "Locked headline\nA file nobody but root can read.\n")
    locked.chmod(0)
    return [SEED_ID, odd] + (["locked"] if RUNS_AS_ROOT else [])


@pytest.fixture(scope="module")
def battery(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Battery]:
    root = Path(os.path.realpath(tmp_path_factory.mktemp("hostile")))
    internal = Site("127.0.0.1", {"/secret": lambda h, s: send(h, 200, GOOD_PAGE)}).start()
    routes: dict[str, Callable] = {
        **ROUTES,
        "/to-internal": redirect(lambda s: internal.url("/secret")),
        "/good": lambda h, s: send(h, 200, GOOD_PAGE),
        "/scripts": lambda h, s: send(h, 200, SCRIPTS_ONLY),
        "/data.json": lambda h, s: send(h, 200, b'{"title": "x"}', Content_Type="application/json"),
    }
    news = Site("127.0.0.2", routes).start()
    try:
        for case, content in FILES:
            write(root / case.origin, content() if callable(content) else content)
        make_specials(root)
        good_ids = make_good(root)
        places = {"news": news.url(""), "internal": internal.url(""), "iport": str(internal.port)}
        files = [
            str(root / "inbox"),
            *(str(root / c.origin) for c in SPECIALS if c.where == "failed" and not c.origin.startswith("inbox/")),
        ]
        urls = [case.origin.format(**places) for case in URLS] + [news.url("/good")]
        env = {name: value for name, value in os.environ.items() if not name.startswith("ARTICLEQA_")}
        env.update(
            ARTICLEQA_MAX_INPUT_MB=str(MAX_MB),
            ARTICLEQA_FETCH_TIMEOUT=str(FETCH_TIMEOUT),
            ARTICLEQA_ALLOWED_NETWORKS='["127.0.0.2/32"]',
            ARTICLEQA_INDEX_DIR=str(root / "index"),
        )

        def cli(*args: str, timeout: int = 240) -> subprocess.CompletedProcess:
            return subprocess.run(
                [str(ARTICLEQA), *args], capture_output=True, text=True, env=env, cwd=root, timeout=timeout, check=False
            )

        first = cli("index", *files, *urls, "--json")
        second = cli("index", *files, *urls, "--json")
        answer = cli("ask", QUESTION, "--json", timeout=180)
        yield Battery(root, places, [*good_ids, "harbour.example-"], first, second, answer, internal)
    finally:
        news.close()
        internal.close()


def entries(battery: Battery, case: Hostile) -> list[dict]:
    origin = battery.origin(case)
    return [entry for entry in battery.report(battery.first)[case.where] if entry["origin"] == origin]


@pytest.mark.integration
def test_the_batch_fails_with_exit_code_1_and_no_traceback(battery: Battery):
    for run in (battery.first, battery.second):
        assert run.returncode == 1, run.stderr[-3000:]
        assert "Traceback" not in run.stderr
        assert "unexpected error" not in run.stdout


def test_there_are_at_least_30_hostile_inputs():
    assert len({case.origin for case in HOSTILE}) >= 30
    assert len({case.name for case in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("case", HOSTILE, ids=[case.name for case in HOSTILE])
@pytest.mark.integration
def test_each_hostile_input_is_named_with_its_reason(battery: Battery, case: Hostile):
    found = entries(battery, case)
    assert found, f"{battery.origin(case)!r} is not in {case.where}"
    assert any(battery.reason(case) in entry["reason"] for entry in found), found


@pytest.mark.integration
def test_nothing_else_failed_and_the_good_articles_were_added(battery: Battery):
    report = battery.report(battery.first)
    expected = {(case.where, battery.origin(case)) for case in HOSTILE}
    reported = {("failed", e["origin"]) for e in report["failed"]} | {
        ("skipped", e["origin"]) for e in report["skipped"]
    }
    assert reported == expected
    added = report["added"]
    assert len(added) == len(battery.good_ids)
    for good in battery.good_ids:
        assert any(article_id.startswith(good) for article_id in added), (good, added)


@pytest.mark.integration
def test_each_hostile_input_gives_one_failure_except_a_capped_record_list(battery: Battery):
    counts: dict[str, int] = {}
    for entry in battery.report(battery.first)["failed"]:
        counts[entry["origin"]] = counts.get(entry["origin"], 0) + 1
    assert {origin: n for origin, n in counts.items() if n > 1} == {str(battery.root / "inbox" / "junk.jsonl"): 21}


@pytest.mark.integration
def test_the_internal_service_was_never_reached(battery: Battery):
    assert battery.internal.paths == []


@pytest.mark.integration
def test_a_good_article_answers_with_a_citation(battery: Battery):
    assert battery.answer.returncode == 0, battery.answer.stderr[-3000:]
    answer = json.loads(battery.answer.stdout)
    assert answer["grounded"] is True
    assert answer["citations"] and answer["citations"][0]["article_id"] == SEED_ID
    assert "waste of time" in answer["citations"][0]["quote"]


@pytest.mark.integration
def test_a_second_identical_run_adds_nothing(battery: Battery):
    first, second = battery.report(battery.first), battery.report(battery.second)
    summary = second["summary"]
    assert (summary["added"], summary["updated"], summary["removed"], summary["chunks_added"]) == (0, 0, 0, 0)
    assert sorted(second["unchanged"]) == sorted(first["added"])

    def reasons(report: dict) -> list:
        return sorted((e["origin"], e["reason"]) for e in report["failed"])

    assert reasons(second) == reasons(first)
