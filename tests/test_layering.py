"""One direction: the user interfaces (`ui`: the command line and the web chat) import the
libraries (`qa`, `index`); the libraries never import `ui`, and the command line lives in `ui`."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT


def _imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """Every module a file of `package` imports (absolute names; relative imports resolved),
    anywhere in it: at the top, inside functions, under TYPE_CHECKING."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


@pytest.mark.parametrize("package", ["qa", "index"])
def test_libraries_never_import_ui(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    offending = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in files
        for line, name in _imported_modules(
            path.read_text(encoding="utf-8"), ".".join(path.relative_to(ROOT).parent.parts)
        )
        if name == "ui" or name.startswith("ui.")
    ]
    assert not offending, offending


def test_the_checker_sees_every_kind_of_import():
    source = (
        "import ui\nfrom ui import app\ndef f():\n    from ui.cli import main\nfrom .. import ui\nfrom . import x\n"
    )
    names = [name for _, name in _imported_modules(source, "qa.sub")]
    assert {"ui", "ui.app", "ui.cli", "ui.cli.main", "qa.ui", "qa.sub.x"} <= set(names)


def test_the_command_line_lives_in_ui():
    assert not (ROOT / "qa" / "cli.py").exists()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'articleqa = "ui.cli:main"' in pyproject
