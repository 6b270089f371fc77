"""The index folder as a whole: which data is live, who may write, and when it changed.

Layout (the data files are described in `index.store`)::

    INDEX_DIR/
        CURRENT          name of the live generation folder (absent: the data lies in INDEX_DIR itself)
        gen-.../         one complete index (manifest.json, chroma/, *.sqlite, version)
        write.lock       held by the one process writing (indexing, pruning, rebuilding)
        uploads/         files added through the web app (kept across rebuilds)

A rebuild writes a new generation beside the live one, which keeps answering meanwhile, and
switches `CURRENT` to it with one atomic rename once it is complete. A rebuild that fails or is
killed leaves `CURRENT` as it was; its half-built generation is removed by the next writer.
Indexes made before generations existed (data directly in INDEX_DIR) are read as they are and
move into a generation on their first rebuild.

Every write session changes the live generation's `version` file (at its start and its end),
so a process that keeps an index open (the web app) sees from two small file reads that another
process has written, and reopens: Chroma's embedded client keeps its vector index in memory and does not
see other processes' writes.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from articleqa.index.defaults import DEFAULT_INDEX_DIR as DEFAULT_INDEX_DIR  # declared there, re-exported

CURRENT = "CURRENT"
LOCK = "write.lock"
VERSION = "version"
GENERATION_PREFIX = "gen-"
# The data files of one generation (see index.store), for removing a pre-generation layout.
DATA_NAMES = ("manifest.json", VERSION, "chroma", "lexical.sqlite", "articles.sqlite", "records.sqlite")


class IndexStoreError(RuntimeError):
    """Base class for problems with an index folder."""


class IndexBusyError(IndexStoreError):
    """Another process or request is writing to the index."""


class IndexFolder:
    """An index folder: its live generation, its write lock and its change token.

    Args:
        root: The index folder (created by the first write, not here).
    """

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self._lock = FileLock(self.root / LOCK)

    # ---- reading ------------------------------------------------------------------------

    def where(self) -> str:
        """Where the index is, for messages: the folder (a database index: the database)."""
        return str(self.root)

    def live(self) -> Path:
        """The folder holding the live index data."""
        try:
            name = (self.root / CURRENT).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return self.root
        if not name.startswith(GENERATION_PREFIX) or "/" in name or not (self.root / name).is_dir():
            raise IndexStoreError(
                f"{self.root / CURRENT} names {name!r}, which is not a generation folder in "
                f"{self.root}; restore the file or remove it to use the data in {self.root}"
            )
        return self.root / name

    def token(self) -> str:
        """Changes whenever a write session starts or ends, or a rebuild switches generations."""
        live = self.live()
        try:
            version = (live / VERSION).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            version = ""
        return f"{live.name}:{version}"

    # ---- writing ------------------------------------------------------------------------

    @contextmanager
    def writing(self, wait: float | None = None, on_wait: Callable[[], None] | None = None) -> Iterator[str]:
        """Hold the write lock (across processes) for a write session.

        Half-built generations left by a killed rebuild are removed, then the live version is
        changed, so readers know a write has begun. The caller changes it again at the end
        (`touch`). Yields the token from before the session began.

        Args:
            wait: Seconds to wait for another writer; None waits as long as it takes, 0
                fails at once.
            on_wait: Called once when the lock is taken by another writer and we wait.

        Raises:
            IndexBusyError: Another writer held the lock for longer than `wait`.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            if wait == 0:
                raise self._busy() from None
            if on_wait is not None:
                on_wait()
            try:
                self._lock.acquire(timeout=-1 if wait is None else wait)
            except Timeout:
                raise self._busy() from None
        try:
            self.remove_stale_generations()
            before = self.token()
            self.touch()
            yield before
        finally:
            self._lock.release()

    def _busy(self) -> IndexBusyError:
        return IndexBusyError(
            f"another process is writing to the index in {self.root} (indexing, pruning or "
            "rebuilding); try again when it has finished"
        )

    def touch(self, data_dir: Path | None = None) -> None:
        """Give the live (or `data_dir`'s) data a new version, atomically."""
        folder = data_dir or self.live()
        tmp = folder / f"{VERSION}.tmp"
        tmp.write_text(uuid.uuid4().hex + "\n", encoding="utf-8")
        os.replace(tmp, folder / VERSION)

    def new_generation(self) -> Path:
        """A new, empty generation folder (not live until `switch`)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.root / f"{GENERATION_PREFIX}{stamp}-{uuid.uuid4().hex[:6]}"
        path.mkdir()
        return path

    def switch(self, generation: Path) -> Path:
        """Make `generation` the live data with one atomic rename; returns the old live folder.

        The caller removes the old data (`remove`) once nothing in this process uses it.
        """
        if generation.parent != self.root or not generation.name.startswith(GENERATION_PREFIX):
            raise ValueError(f"{generation} is not a generation folder of {self.root}")
        old = self.live()
        self.touch(generation)
        tmp = self.root / f"{CURRENT}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(generation.name + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / CURRENT)
        _fsync_dir(self.root)
        return old

    def remove(self, data_dir: Path) -> None:
        """Delete a generation that is no longer live (or the data files of the old layout)."""
        if data_dir == self.live():
            raise ValueError(f"{data_dir} is the live index; it cannot be removed")
        if data_dir == self.root:
            for name in DATA_NAMES:
                for path in self.root.glob(f"{name}*"):
                    _remove_path(path)
        elif data_dir.parent == self.root and data_dir.name.startswith(GENERATION_PREFIX):
            _remove_path(data_dir)
        else:
            raise ValueError(f"{data_dir} is not index data in {self.root}")

    def remove_stale_generations(self) -> list[Path]:
        """Remove generation folders that are not live: left by a rebuild that failed or was
        killed, or by one whose old data could not be removed. Only call with the write lock."""
        live = self.live()
        stale = [p for p in self.root.glob(f"{GENERATION_PREFIX}*") if p.is_dir() and p != live]
        for path in stale:
            _remove_path(path)
        if live != self.root and any((self.root / name).exists() for name in DATA_NAMES):
            self.remove(self.root)  # the old layout's data, if removing it after a switch failed
            stale.append(self.root)
        return stale


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
