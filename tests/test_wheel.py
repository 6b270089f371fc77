"""One import name: the wheel installs `articleqa` and nothing else into site-packages, and the
installed package works without the checkout (its weights and prompts inside it)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _checkout_copy(target: Path) -> Path:
    """The working tree's files that git would commit (tracked or not ignored), so the wheel is
    built from what a clean clone has, not from local build folders."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = _checkout_copy(tmp_path_factory.mktemp("source"))
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = dist.glob("articleqa-*.whl")
    return built


def test_the_wheel_holds_one_top_level_name(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    assert {t for t in top_level if not t.endswith(".dist-info")} == {"articleqa"}
    assert {"articleqa/qa/__init__.py", "articleqa/index/__init__.py", "articleqa/ui/cli.py"} <= set(names)
    assert {"articleqa/qa/weights/answer_scorer.json", "articleqa/qa/weights/span_ranker.json"} <= set(names)
    assert "articleqa/prompts/answer.txt" in names
    assert {"articleqa/index/calibration/news.jsonl", "articleqa/index/calibration/LICENSE-NOTE.txt"} <= set(names)
    assert not [n for n in names if n.startswith(("articleqa/tests", "articleqa/training", "tests/"))]


_CHECK_INSTALLED = r"""
import hashlib, importlib.util, json, sys
import articleqa.qa, articleqa.index, articleqa.ui.cli
from articleqa.prompts import render_prompt
from articleqa.qa import ArticleQA
from articleqa.qa.scorer import weights_path
path = weights_path()
print(json.dumps({
    "modules": [articleqa.qa.__file__, articleqa.index.__file__, articleqa.ui.cli.__file__],
    "weights": str(path),
    "weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    "bare": {name: importlib.util.find_spec(name) is not None for name in ("qa", "index", "ui", "prompts")},
    "prompt": len(render_prompt("condense_question", history="h", question="q")) > 0,
}))
"""


def test_the_wheel_installs_and_imports_in_a_fresh_venv(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    installed = {p.name for p in site.iterdir()} - {"__pycache__"}
    assert {n for n in installed if not n.endswith(".dist-info")} == {"articleqa"}, installed
    # The dependencies come from this environment's site-packages as a plain path entry: its
    # .pth files (the checkout's editable install among them) are not run, so `articleqa` can
    # only come from the wheel.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    result = subprocess.run(
        [str(python), "-I", "-c", _CHECK_INSTALLED], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(Path(m).is_relative_to(site / "articleqa") for m in report["modules"]), report["modules"]
    assert Path(report["weights"]).is_relative_to(site / "articleqa" / "qa" / "weights")
    shipped = ROOT / "qa" / "weights" / "answer_scorer.json"
    assert report["weights_sha256"] == hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert report["bare"] == {"qa": False, "index": False, "ui": False, "prompts": False}
    assert report["prompt"]

    command = subprocess.run(
        [str(venv / "bin" / "articleqa"), "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert command.returncode == 0, command.stderr[-3000:]
    assert "index" in command.stdout and "ask" in command.stdout
