"""The test markers mean what pyproject.toml says, checked from the test files' source.

`slow`: loads the real embedding model or indexes a real corpus. `integration`: starts a real
server on 127.0.0.1. So `pytest -m "not slow"` runs only quick tests, and `-m "not integration"`
opens no port.

What counts is read from each test's code, the fixtures it requests (its module's, else
conftest's, transitively, autouse ones included) and the module's own functions and classes it
uses (transitively):

- slow: `get_embeddings` or `SentenceTransformerEmbeddings` (conftest's `embeddings` fixture
  calls the first, so `counting`, `open_store`, `example_index` and every fixture built on them
  count too);
- integration: `ThreadingHTTPServer`/`HTTPServer`, Playwright's `sync_playwright`, the web app's
  `serve`, bench.load's `start_serve`/`measure_load`, or `subprocess.Popen` of a command line
  holding "serve", "run" (`chroma run`) or "llama_cpp.server".

A test class whose tests are inherited (LangChain's standard suites) counts as one test. A
server started inside a script string (tests/test_offline.py's network namespace) or a model
loaded by a CLI subprocess is not seen here: those modules are marked by hand.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TESTS = Path(__file__).parent

MODEL_CALLS = {"get_embeddings", "SentenceTransformerEmbeddings"}  # the real model, loaded
SERVER_NAMES = {
    "ThreadingHTTPServer",
    "HTTPServer",
    "listen",  # a listening socket (tests/test_llm.py's server that never answers)
    "sync_playwright",
    "serve",
    "start_serve",
    "measure_load",
    "start_chroma",  # tests/postgres_server.py: `chroma run`
    "serve_chroma",  # tests/conftest.py: `chroma run` for a fixture
    "start_postgres",  # tests/postgres_server.py: initdb + pg_ctl
}
SERVER_COMMANDS = {"serve", "run", "llama_cpp.server"}  # in a Popen'd command line


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _marks_in(node: ast.AST | None) -> set[str]:
    """The `pytest.mark.X` names anywhere in an expression (a decorator, a `pytestmark` value)."""
    if node is None:
        return set()
    return {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute) and _dotted(n.value) == "pytest.mark"}


def _pytestmark(body: list[ast.stmt]) -> set[str]:
    marks: set[str] = set()
    for stmt in body:
        if isinstance(stmt, ast.Assign) and any(_dotted(t) == "pytestmark" for t in stmt.targets):
            marks |= _marks_in(stmt.value)
    return marks


def _is_fixture(node: ast.AST) -> bool:
    return any(_dotted(d.func if isinstance(d, ast.Call) else d) == "pytest.fixture" for d in node.decorator_list)


def _is_autouse(node: ast.AST) -> bool:
    return any(
        isinstance(d, ast.Call)
        and _dotted(d.func) == "pytest.fixture"
        and any(k.arg == "autouse" and getattr(k.value, "value", False) is True for k in d.keywords)
        for d in node.decorator_list
    )


@dataclass
class Unit:
    """A module-level function or class: what it uses and what it shows directly."""

    name: str
    marks: set[str]
    params: set[str] = field(default_factory=set)  # fixtures it requests
    names: set[str] = field(default_factory=set)  # names it uses (module-level ones are followed)
    needs: set[str] = field(default_factory=set)  # "slow" / "integration" seen in its own code


def _unit(node: ast.FunctionDef | ast.ClassDef) -> Unit:
    functions = (
        [node] if not isinstance(node, ast.ClassDef) else [n for n in node.body if isinstance(n, ast.FunctionDef)]
    )
    unit = Unit(node.name, set().union(*(_marks_in(d) for d in node.decorator_list)))
    if isinstance(node, ast.ClassDef):
        unit.marks |= _pytestmark(node.body)
    for function in functions:
        unit.params |= {a.arg for a in function.args.args + function.args.kwonlyargs} - {"self", "cls", "request"}
    for sub in (n for stmt in node.body for n in ast.walk(stmt)):
        if isinstance(sub, ast.Name):
            unit.names.add(sub.id)
            if sub.id in MODEL_CALLS:
                unit.needs.add("slow")
        if (
            isinstance(sub, ast.Name | ast.Attribute)
            and (sub.id if isinstance(sub, ast.Name) else sub.attr) in SERVER_NAMES
        ):
            unit.needs.add("integration")
        if isinstance(sub, ast.Call) and _dotted(sub.func).endswith("Popen") and sub.args:
            command = sub.args[0]
            if isinstance(command, ast.List | ast.Tuple) and any(
                isinstance(e, ast.Constant) and e.value in SERVER_COMMANDS for e in command.elts
            ):
                unit.needs.add("integration")
    return unit


@dataclass
class Module:
    marks: set[str]
    units: dict[str, Unit]  # module-level functions and classes, tests and fixtures included
    fixtures: set[str]
    autouse: set[str]
    tests: list[str]
    imported: dict[str, str]  # name -> the tests/ module it is imported from ("test_fetch_safety")


def parse(source: str) -> Module:
    tree = ast.parse(source)
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    return Module(
        marks=_pytestmark(tree.body),
        units={n.name: _unit(n) for n in defs},
        fixtures={n.name for n in defs if isinstance(n, ast.FunctionDef) and _is_fixture(n)},
        autouse={n.name for n in defs if isinstance(n, ast.FunctionDef) and _is_autouse(n)},
        tests=[
            n.name
            for n in defs
            if (isinstance(n, ast.FunctionDef) and n.name.startswith("test_"))
            or (isinstance(n, ast.ClassDef) and n.name.startswith("Test"))
        ],
        imported={
            alias.asname or alias.name: node.module.removeprefix("tests.")
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests.")
            for alias in node.names
        },
    )


@functools.cache
def _tests_module(name: str) -> Module:
    return parse((TESTS / f"{name}.py").read_text(encoding="utf-8"))


def needs_of(module: Module, test: str, conftest: Module) -> set[str]:
    """The marks `test` needs ("slow", "integration"), from everything it reaches."""
    needs: set[str] = set()
    stack = [(module, test)] + [(module, f) for f in module.autouse] + [(conftest, f) for f in conftest.autouse]
    seen: set[tuple[int, str]] = set()
    while stack:
        where, name = stack.pop()
        if (id(where), name) in seen:
            continue
        seen.add((id(where), name))
        unit = where.units[name]
        needs |= unit.needs
        for used in unit.names:
            if used in where.units and used not in where.tests:
                stack.append((where, used))
            elif used in where.imported:  # a helper of another test module (its server, say)
                other = _tests_module(where.imported[used])
                if used in other.units:
                    stack.append((other, used))
        for param in unit.params:
            if param in module.fixtures:
                stack.append((module, param))
            elif param in conftest.fixtures:
                stack.append((conftest, param))
    return needs


def missing_marks(source: str, conftest: Module) -> list[str]:
    """'test_name: slow' for each mark a test of `source` lacks."""
    module = parse(source)
    problems = []
    for test in module.tests:
        marks = module.marks | module.units[test].marks
        problems += [f"{test}: {mark}" for mark in sorted(needs_of(module, test, conftest) - marks)]
    return problems


@pytest.fixture(scope="module")
def conftest() -> Module:
    return parse((TESTS / "conftest.py").read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", sorted(TESTS.glob("test_*.py")), ids=lambda p: p.name)
def test_tests_carry_the_marks_of_what_they_start(path, conftest):
    assert missing_marks(path.read_text(encoding="utf-8"), conftest) == []


# ---- the check itself ------------------------------------------------------------------------

UNMARKED = """
import pytest
from http.server import ThreadingHTTPServer

@pytest.fixture
def site():
    yield start_site()

def start_site():
    return ThreadingHTTPServer(("127.0.0.1", 0), object)

@pytest.fixture
def small_index(open_store):
    return open_store()

def test_pure():
    assert 1 + 1 == 2

def test_with_the_model(embeddings):
    assert embeddings

def test_through_a_fixture(small_index):
    assert small_index

def test_fetches(site):
    assert site

@pytest.mark.slow
def test_marked(example_index):
    assert example_index

def test_serve(tmp_path):
    import subprocess
    subprocess.Popen(["articleqa", "serve", "--index-dir", str(tmp_path)])

class TestSuite:
    @pytest.fixture(autouse=True)
    def _index(self, example_index):
        self.index = example_index
"""


def test_the_check_flags_tests_that_lack_their_marks(conftest):
    assert missing_marks(UNMARKED, conftest) == [
        "test_with_the_model: slow",
        "test_through_a_fixture: slow",
        "test_fetches: integration",
        "test_serve: integration",
        "TestSuite: slow",
    ]
    marked = UNMARKED.replace(
        "import pytest\n", "import pytest\npytestmark = [pytest.mark.slow, pytest.mark.integration]\n"
    )
    assert missing_marks(marked, conftest) == []
