"""A throwaway PostgreSQL server for the tests: initdb in a temporary folder, on 127.0.0.1.

PostgreSQL refuses to run as root, and CI (like the development machine) runs as root, so the
server runs as an unprivileged user (`articleqa-pg`, created with `useradd` when missing) that
owns the data folder; `runuser` starts each command as that user. The binaries come from
Debian's `postgresql` package (/usr/lib/postgresql/VERSION/bin, not on PATH); without them the
tests that need a server fail, naming the package, rather than skip.

`start_chroma` starts the other server of server mode, `chroma run`, for the tests and for
`bench.server_mode`.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PG_USER = "articleqa-pg"
BIN_GLOB = "/usr/lib/postgresql/*/bin"
MISSING = (
    "PostgreSQL's server binaries (initdb, pg_ctl) were not found in /usr/lib/postgresql/*/bin or on PATH. "
    "Install them with: apt-get install -y --no-install-recommends postgresql (README: System packages)."
)


def postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: the newest /usr/lib/postgresql/*/bin, else PATH's."""
    found = sorted(glob.glob(BIN_GLOB), key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
    for folder in reversed(found):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    """A running server; `url(database)` is its SQLAlchemy URL (psycopg 3 driver)."""

    bin: Path
    data: Path
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(_as_user([*args]), capture_output=True, text=True, timeout=120)

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = self._run(
            str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", database,
            "-v", "ON_ERROR_STOP=1", "-At", "-c", sql,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _as_user(command: list[str]) -> list[str]:
    """`command` run as PG_USER when we are root (PostgreSQL refuses root), else as ourselves."""
    return ["runuser", "-u", PG_USER, "--", *command] if _is_root() else command


def _ensure_user() -> str:
    """The user the server runs as: PG_USER (created when missing) as root, else ourselves."""
    if not _is_root():
        import getpass

        return getpass.getuser()
    if subprocess.run(["id", "-u", PG_USER], capture_output=True).returncode != 0:
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            capture_output=True,
            text=True,
        )
        if result.returncode not in (0, 9):  # 9: created meanwhile by another test process
            raise RuntimeError(f"useradd {PG_USER} failed: {result.stderr.strip()}")
    return PG_USER


def start_postgres(folder: Path) -> PostgresServer:
    """initdb into `folder`/data and start the server on a free port of 127.0.0.1 (unix socket
    in `folder` too), trusting local connections. Raises RuntimeError (MISSING when the
    binaries are not installed) when it cannot."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError(MISSING)
    user = _ensure_user()
    folder.mkdir(parents=True, exist_ok=True)
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir(exist_ok=True)
    if _is_root():
        shutil.chown(folder, PG_USER)
        shutil.chown(sockets, PG_USER)
        folder.chmod(0o755)
        # Every folder above must be enterable by the server's user (pytest's tmp folders are 0700).
        for parent in folder.parents:
            if parent.stat().st_mode & 0o001 == 0:
                parent.chmod(parent.stat().st_mode | 0o001)
    initdb = subprocess.run(
        _as_user([str(bin_dir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync"]),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if initdb.returncode != 0:
        raise RuntimeError(f"initdb failed: {initdb.stderr.strip() or initdb.stdout.strip()}")
    port = free_port()
    options = f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off -c full_page_writes=off -c max_connections=200"
    start = subprocess.run(
        _as_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-o", options,
                  "-w", "-t", "120", "start"]),
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    if start.returncode != 0:
        log = (folder / "server.log").read_text(errors="replace")[-2000:] if (folder / "server.log").exists() else ""
        raise RuntimeError(f"pg_ctl start failed: {start.stderr.strip()} {log}")
    server = PostgresServer(bin_dir, data, port, user)
    deadline = time.monotonic() + 60
    while True:
        try:
            server.psql("SELECT 1")
            return server
        except RuntimeError:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.2)


def start_chroma(folder: Path, timeout: float = 60.0, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """`chroma run` (the server that ships with chromadb) on `port` (default: a free one) of
    127.0.0.1, its data in `folder`; returns (process, URL). Stop it with `terminate()`.

    Raises:
        RuntimeError: it exited at start or did not answer within `timeout` seconds.
    """
    port = port or free_port()
    chroma = Path(sys.executable).with_name("chroma")
    proc = subprocess.Popen(
        [str(chroma), "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"chroma run exited at start (code {proc.returncode})") from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"chroma run did not answer within {timeout:.0f} s")
