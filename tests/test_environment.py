"""The environment is written once, at the entry points; defaults are declared once.

Library modules (`index`, `qa`, and `ui` but for its entry points) must not write `os.environ`
when imported: the offline switches are set by `index.apply_offline_environment()`, called by
the `articleqa` command (`ui.cli`), the web app (`ui.app`, before gradio imports
huggingface_hub) and the Python API (`ArticleQA.open`/`from_options`, at call time).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import subprocess
import sys

import pytest

from articleqa.index.offline import OFFLINE_ENVIRONMENT
from tests.conftest import ROOT

ENTRY_POINTS = {"articleqa.ui.cli", "articleqa.ui.app"}

_IMPORT_ALL = r"""
import importlib, json, os, pkgutil, sys
entry_points = set(json.loads(sys.argv[1]))
before = dict(os.environ)
names = []
for package in ("articleqa.index", "articleqa.qa", "articleqa.ui"):
    names.append(package)
    module = importlib.import_module(package)
    names += [m.name for m in pkgutil.walk_packages(module.__path__, package + ".")]
for name in names:
    if name not in entry_points:
        importlib.import_module(name)
after = dict(os.environ)
changed = {k: after.get(k) for k in set(before) | set(after) if before.get(k) != after.get(k)}
print(json.dumps({"modules": names, "changed": changed}))
"""


def _clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in OFFLINE_ENVIRONMENT}


def _run_clean(code: str, *args: str):
    """Run `code` in a fresh interpreter without the offline switches; its last line of output, as JSON."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_clean_environment(),
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_libraries_leaves_the_environment_alone():
    report = _run_clean(_IMPORT_ALL, json.dumps(sorted(ENTRY_POINTS)))
    assert {"articleqa.qa.api", "articleqa.qa.settings", "articleqa.index.embeddings", "articleqa.ui.library"} <= set(
        report["modules"]
    )
    assert report["changed"] == {}


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_the_entry_points_set_the_offline_switches(entry_point):
    code = (
        f"import json, os, {entry_point}; "
        f"print(json.dumps({{k: os.environ.get(k) for k in {sorted(OFFLINE_ENVIRONMENT)!r}}}))"
    )
    assert _run_clean(code) == dict(OFFLINE_ENVIRONMENT)


def test_the_offline_switches_keep_what_the_user_set(monkeypatch):
    from articleqa.index.offline import apply_offline_environment

    for name in OFFLINE_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    applied = apply_offline_environment()
    assert os.environ["HF_HUB_OFFLINE"] == "0" and "HF_HUB_OFFLINE" not in applied
    assert applied == {k: v for k, v in OFFLINE_ENVIRONMENT.items() if k != "HF_HUB_OFFLINE"}


def _defaults(function) -> dict[str, object]:
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def test_every_layer_has_the_same_defaults(monkeypatch):
    """The settings, `QAOptions`, `ArticleQA.open`, `open_index`, `IndexStore` and the chunker
    agree, because they all name the same constants."""
    from articleqa.index import (
        DEFAULT_CHUNK_OVERLAP,
        DEFAULT_CHUNK_SIZE,
        DEFAULT_INDEX_DIR,
        IndexStore,
        chunk_article,
        open_index,
    )
    from articleqa.index.sources import FetchPolicy
    from articleqa.qa.api import ArticleQA
    from articleqa.qa.options import QAOptions
    from articleqa.qa.settings import Settings

    for name in [n for n in os.environ if n.startswith("ARTICLEQA_")]:
        monkeypatch.delenv(name)
    settings = Settings(_env_file=None)
    options = QAOptions()
    # cache_dir: the settings resolve the default folder, QAOptions leaves it to the index (None)
    assert dataclasses.replace(settings.qa_options(), cache_dir=None) == options
    assert _defaults(ArticleQA.open) == {
        "index_dir": DEFAULT_INDEX_DIR,
        **dataclasses.asdict(options),
        "retrieval_mode": "hybrid",
    }
    assert str(settings.index_dir) == DEFAULT_INDEX_DIR
    for function in (open_index, IndexStore.__init__):
        defaults = _defaults(function)
        assert (defaults["chunk_size"], defaults["chunk_overlap"]) == (DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_OVERLAP)
        assert defaults["collection"] == options.collection
    assert (settings.chunk_size, settings.chunk_overlap) == (DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_OVERLAP)
    assert _defaults(chunk_article) == {"chunk_size": DEFAULT_CHUNK_SIZE, "overlap": DEFAULT_CHUNK_OVERLAP, "skip": ()}
    assert settings.fetch_policy() == FetchPolicy()
