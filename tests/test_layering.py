"""One direction: the user interfaces (`articleqa.ui`: the command line and the web chat) import
the libraries (`articleqa.qa`, `articleqa.index`); the libraries never import `ui`, and the command
line lives in `ui`. One import name: the owner's folders are imported only as `articleqa.*`."""

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


FOLDERS = ("qa", "index", "ui", "prompts")


def _imports_in(folder: str) -> list[tuple[str, int, str]]:
    """(file, line, module) for every import in the .py files under `folder` of the checkout."""
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        relative = path.relative_to(ROOT)
        package = ".".join(relative.parent.parts)
        if folder in FOLDERS:  # installed as articleqa.<folder>
            package = f"articleqa.{package}"
        found += [(str(relative), line, name) for line, name in _imported_modules(path.read_text("utf-8"), package)]
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("package", ["qa", "index"])
def test_libraries_never_import_ui(package):
    imports = _imports_in(package)
    assert imports
    offending = [f"{path}:{line}: {name}" for path, line, name in imports if _within(name, "articleqa.ui")]
    assert not offending, offending


@pytest.mark.parametrize("folder", [*FOLDERS, "tests", "training", "bench"])
def test_the_folders_are_imported_only_as_articleqa(folder):
    """A bare `import qa` would load a second copy of every module beside `articleqa.qa`."""
    offending = [
        f"{path}:{line}: {name}"
        for path, line, name in _imports_in(folder)
        if any(_within(name, bare) for bare in FOLDERS)
    ]
    assert not offending, offending


def test_the_checker_sees_every_kind_of_import():
    source = (
        "import ui\nfrom ui import app\ndef f():\n    from ui.cli import main\nfrom .. import ui\nfrom . import x\n"
    )
    names = [name for _, name in _imported_modules(source, "articleqa.qa.sub")]
    assert {"ui", "ui.app", "ui.cli", "ui.cli.main", "articleqa.qa.ui", "articleqa.qa.sub.x"} <= set(names)


def test_the_command_line_lives_in_ui():
    assert not (ROOT / "qa" / "cli.py").exists()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'articleqa = "articleqa.ui.cli:main"' in pyproject
