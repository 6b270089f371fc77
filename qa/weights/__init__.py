"""The trained weights shipped inside the package (`qa/weights/*.json`, `*.safetensors`)."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path


def shipped(name: str) -> Path:
    """The path of the shipped weights file `name`."""
    return Path(str(resources.files(__name__).joinpath(name)))


def file_sha256(path: Path) -> str:
    """A weights file's SHA-256 (what the tests and the training records name)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
