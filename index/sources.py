"""Find the inputs to read (files, folders, URLs) and read local files, safely.

Discovery turns what the user named into `SourceRef`s in a deterministic order and reports
what it cannot use; `read_file_bytes` turns a file into bytes, raising `FetchError` with a
reason that is shown to the user as it is (URLs: `index.fetch.fetch_page`).

Every read happens under a `FetchPolicy`, because inputs may come from people who do not run
the server (URLs and uploads in the web app): files and pages (decoded) have a size cap, and
URLs may only reach public addresses (index/fetch.py). Special files (FIFOs, devices) are
never opened blocking.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import ipaddress
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from articleqa.index.models import SourceFailure

DEFAULT_EXCLUDES: tuple[str, ...] = ("LICENSE*", "README*", ".*")
SUPPORTED_EXTENSIONS: tuple[str, ...] = (".txt", ".md", ".html", ".htm", ".json", ".jsonl")
# News feeds and sitemaps saved as files (their entries' pages are fetched): read when named,
# never picked up while walking a folder, where they would start downloads nobody asked for.
FEED_EXTENSIONS: tuple[str, ...] = (".xml", ".rss", ".atom")
USER_AGENT = "articleqa/0.1"
HTML_CONTENT_TYPES = ("text/html", "application/xhtml+xml")
# Article pages and files are far smaller; this bounds memory if an input is something huge.
MAX_INPUT_BYTES = 20 * 1024 * 1024
# Seconds for one URL, from the name lookup to the last byte.
DEFAULT_FETCH_TIMEOUT = 20.0
# The settings that change a refusal, named in the messages so the user knows the way out.
SIZE_SETTING = "ARTICLEQA_MAX_INPUT_MB"
TIMEOUT_SETTING = "ARTICLEQA_FETCH_TIMEOUT"
BAD_NAME_REASON = "the file name is not valid UTF-8 (rename the file to index it)"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class FetchPolicy:
    """Limits and address rules for reading every input (URLs and local files).

    Attributes:
        timeout: seconds allowed for one URL in total: name lookups, every redirect, the
            TLS handshakes and every byte (a server dripping bytes fails at this deadline).
        max_bytes: the largest file or page read (decoded bytes for compressed pages).
        allow_private: fetch loopback, private, link-local and other non-public addresses.
        allowed_networks: CIDR blocks (e.g. "10.1.0.0/16") that may be fetched although
            they are not public; everything else non-public stays refused.
        max_redirects: redirects followed per URL (each target is checked again).
    """

    timeout: float = DEFAULT_FETCH_TIMEOUT
    max_bytes: int = MAX_INPUT_BYTES
    allow_private: bool = False
    allowed_networks: tuple[str, ...] = ()
    max_redirects: int = 5
    networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Refuse nonsense limits and bad CIDR blocks now, not at the first URL."""
        if not self.timeout > 0:
            raise ValueError(f"fetch timeout must be more than 0 seconds, got {self.timeout!r} ({TIMEOUT_SETTING})")
        if self.max_bytes < 1:
            raise ValueError(f"the input size limit must be at least 1 byte, got {self.max_bytes!r} ({SIZE_SETTING})")
        if self.max_redirects < 0:
            raise ValueError(f"max_redirects must be 0 or more, got {self.max_redirects!r}")
        object.__setattr__(self, "networks", tuple(parse_network(cidr) for cidr in self.allowed_networks))


def parse_network(cidr: str) -> IPNetwork:
    """One entry of ARTICLEQA_ALLOWED_NETWORKS as a network; host bits may be set (10.1.2.3/16).

    Raises:
        ValueError: naming the entry and what a valid one looks like.
    """
    try:
        return ipaddress.ip_network(str(cidr).strip(), strict=False)
    except ValueError:
        raise ValueError(
            f"invalid network {cidr!r} in ARTICLEQA_ALLOWED_NETWORKS: expected a CIDR block "
            'such as "10.1.0.0/16", "192.168.5.7/32" or "fd00::/8"'
        ) from None


@dataclass(frozen=True)
class FileRef:
    """A file to read, with the folder it was found under (None when named directly)."""

    path: Path
    root: Path | None = None

    @property
    def origin(self) -> str:
        """The absolute resolved path, as recorded on articles and failures."""
        return absolute_path(self.path)

    @property
    def extension(self) -> str:
        return self.path.suffix.lower()

    @property
    def default_id(self) -> str:
        """Path relative to the root folder, posix-style, without extension; else the stem."""
        if self.root is None:
            return self.path.stem
        return self.path.relative_to(self.root).with_suffix("").as_posix()


@dataclass(frozen=True)
class UrlRef:
    """An `http://` or `https://` article page."""

    url: str

    @property
    def origin(self) -> str:
        """The URL exactly as given."""
        return self.url


SourceRef = FileRef | UrlRef


def supported_list() -> str:
    """The supported extensions as one string for messages: `.txt, .md, ...`."""
    return ", ".join(SUPPORTED_EXTENSIONS)


def canonical_url(url: str) -> str:
    """Normalise a URL so that trivially different spellings give the same id.

    Args:
        url: an absolute `http(s)://` URL.

    Returns:
        The URL with scheme and host lower-cased, a default port, user info and the fragment
        dropped, and an empty path given as `/`. Path and query are kept: they select the page.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 address needs its brackets back
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # a malformed port: keep the address part as written
        netloc = parts.netloc.lower()
    else:
        default_port = {"http": 80, "https": 443}.get(scheme)
        netloc = host if port in (None, default_port) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def url_article_id(url: str) -> str:
    """The stable id of a web article.

    Args:
        url: the article's URL (its canonical URL when the page names one).

    Returns:
        `<hostname>-<first 12 hex digits of sha1(canonical_url(url))>`.
    """
    canonical = canonical_url(url)
    host = urlsplit(canonical).hostname or "web"
    return f"{host}-{hashlib.sha1(canonical.encode('utf-8')).hexdigest()[:12]}"


class FetchError(Exception):
    """An input could not be read or fetched; the message is the failure reason."""


def absolute_path(path: Path) -> str:
    """The absolute path with links resolved, printable even for hostile names.

    `os.path.realpath` rather than `Path.resolve()`: in Python 3.11 the latter raises
    RuntimeError on a symbolic link loop. A name that is not valid UTF-8 (possible on Linux)
    is shown with `\\xNN` escapes, so printing or storing the origin never fails.
    """
    real = os.path.realpath(path)
    try:
        real.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(real).decode("utf-8", errors="backslashreplace")
    return real


def valid_utf8_name(path: Path) -> bool:
    """False for a file name that is not valid UTF-8: its id and origin could not be stored."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def describe_os_error(exc: OSError) -> str:
    """A short reason for a failed open, stat or read, in the same words on every platform."""
    reasons = {
        errno.ENOENT: "no such file or directory",
        errno.ELOOP: "symbolic link loop (too many levels of symbolic links)",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EISDIR: "is a folder, not a file",
        errno.ENXIO: "not a regular file: a socket or a device",
        errno.ENAMETOOLONG: "file name too long",
    }
    return reasons.get(exc.errno or 0, exc.strerror or str(exc))


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages: `a named pipe (FIFO)`, `a socket`, ..."""
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _special_reason(entry: Path) -> str:
    """Why a folder entry that is neither a folder nor a regular file cannot be read."""
    try:
        return f"not a regular file: {file_kind(entry.stat().st_mode)}"
    except OSError as exc:
        if exc.errno == errno.ENOENT and entry.is_symlink():
            return "broken symbolic link (its target does not exist)"
        return describe_os_error(exc)


def is_url(value: str | Path) -> bool:
    """True for `http://` and `https://` strings (a Path is never a URL)."""
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


def _excluded_by(rel: str, name: str, exclude: Sequence[str]) -> str | None:
    """The first exclude glob matching the entry's name or relative path, case-insensitively."""
    for pattern in exclude:
        pat = pattern.lower()
        if fnmatch.fnmatchcase(name.lower(), pat) or fnmatch.fnmatchcase(rel.lower(), pat):
            return pattern
    return None


def _walk(
    root: Path,
    exclude: Sequence[str],
    refs: list[SourceRef],
    failures: list[SourceFailure],
    skipped: list[SourceFailure],
) -> None:
    """Collect supported files under `root`, depth first in sorted name order."""
    stack = [root]
    found: list[FileRef] = []
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(folder.iterdir(), key=lambda p: p.name)
        except OSError as exc:
            failures.append(SourceFailure(origin=absolute_path(folder), reason=describe_os_error(exc)))
            continue
        subfolders = []
        for entry in entries:
            rel = entry.relative_to(root).as_posix()
            shown = absolute_path(entry) if not valid_utf8_name(entry) else str(entry)
            pattern = _excluded_by(rel, entry.name, exclude)
            if pattern is not None:
                skipped.append(SourceFailure(origin=shown, reason=f"excluded by pattern {pattern!r}"))
            elif entry.name.startswith("."):
                kind = "folder" if entry.is_dir() else "file"
                skipped.append(SourceFailure(origin=shown, reason=f"hidden {kind}"))
            elif entry.is_symlink() and entry.is_dir():
                # Not followed: a link back up the tree would make the walk endless.
                skipped.append(SourceFailure(origin=shown, reason="symbolic link to a folder, not followed"))
            elif entry.is_dir():
                subfolders.append(entry)
            elif not entry.is_file():
                # FIFOs, sockets, devices, broken links and link loops: never opened.
                skipped.append(SourceFailure(origin=shown, reason=_special_reason(entry)))
            elif entry.suffix.lower() not in SUPPORTED_EXTENSIONS:
                what = f"extension {entry.suffix!r}" if entry.suffix else "no file extension"
                skipped.append(
                    SourceFailure(origin=shown, reason=f"unsupported {what} (supported: {supported_list()})")
                )
            elif not valid_utf8_name(entry):
                failures.append(SourceFailure(origin=shown, reason=BAD_NAME_REASON))
            else:
                found.append(FileRef(path=entry, root=root))
        stack.extend(reversed(subfolders))
    # One global order by relative path, so the order never depends on the walk.
    refs.extend(sorted(found, key=lambda ref: ref.path.relative_to(root).as_posix()))


def discover(
    inputs: Sequence[str | Path], exclude: Sequence[str] = DEFAULT_EXCLUDES
) -> tuple[list[SourceRef], list[SourceFailure], list[SourceFailure]]:
    """Expand files, folders and URLs into the sources to read.

    Folders are walked recursively in sorted order; hidden entries and names (or relative
    paths) matching an `exclude` glob are skipped, and so are FIFOs, sockets, devices, broken
    links and link loops (never opened). A file named directly is always read when its
    extension is supported, feeds and sitemaps (`FEED_EXTENSIONS`) included; named directly,
    those special files are failures. A folder named
    like a file (`a.txt/`) is a folder and is walked. A file whose name is not valid UTF-8
    fails: its id and origin could not be stored. A file reached twice is read once.

    Args:
        inputs: file paths, folder paths and `http(s)://` URLs, in the order to read them.
        exclude: glob patterns (case-insensitive) for entries to skip while walking folders.

    Returns:
        `(refs, failures, skipped)`: the sources to read; inputs that cannot be read
        (missing path, unsupported extension of a named file, unreadable folder); and
        entries passed over while walking folders, each with the reason.
    """
    refs: list[SourceRef] = []
    failures: list[SourceFailure] = []
    skipped: list[SourceFailure] = []
    for item in inputs:
        if is_url(item):
            refs.append(UrlRef(url=str(item).strip()))
            continue
        if isinstance(item, str) and "://" in item:
            scheme = item.split("://", 1)[0]
            failures.append(
                SourceFailure(origin=item, reason=f"unsupported URL scheme {scheme!r} (use http:// or https://)")
            )
            continue
        path = Path(item)
        origin = absolute_path(path)
        try:
            mode = path.stat().st_mode
        except OSError as exc:
            failures.append(SourceFailure(origin=origin, reason=describe_os_error(exc)))
            continue
        if stat.S_ISDIR(mode):
            _walk(Path(os.path.realpath(path)), exclude, refs, failures, skipped)
        elif not stat.S_ISREG(mode):
            failures.append(SourceFailure(origin=origin, reason=f"not a regular file: {file_kind(mode)}"))
        elif path.suffix.lower() not in SUPPORTED_EXTENSIONS + FEED_EXTENSIONS:
            what = f"file extension {path.suffix!r}" if path.suffix else "file without extension"
            failures.append(SourceFailure(origin=origin, reason=f"unsupported {what} (supported: {supported_list()})"))
        elif not valid_utf8_name(path):
            failures.append(SourceFailure(origin=origin, reason=BAD_NAME_REASON))
        else:
            refs.append(FileRef(path=path))
    return _dedupe(refs), failures, skipped


def _dedupe(refs: list[SourceRef]) -> list[SourceRef]:
    """Drop later refs to a file or URL already listed (e.g. a file inside a named folder)."""
    seen: set[str] = set()
    out: list[SourceRef] = []
    for ref in refs:
        if ref.origin not in seen:
            seen.add(ref.origin)
            out.append(ref)
    return out


# --- local files ---------------------------------------------------------------------------


def too_large(size: int | None, limit: int, what: str = "file") -> str:
    """The reason for an input over the size cap, naming the limit and the setting."""
    if size is None:
        return f"{what} is over the limit of {limit} bytes ({SIZE_SETTING})"
    return f"{what} is {size} bytes, over the limit of {limit} ({SIZE_SETTING})"


def _read_at_most(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes from `fd`: a file growing while it is read cannot exceed it."""
    parts: list[bytes] = []
    left = limit
    while left > 0:
        part = os.read(fd, min(left, 1 << 20))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def read_file_bytes(ref: FileRef, *, max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """Read a regular file of at most `max_bytes` bytes.

    The file is opened with O_NONBLOCK and checked with fstat on the open descriptor: a FIFO
    (which would wait forever for a writer), a device or a folder is refused without reading,
    and a file replaced between discovery and reading is judged by what was actually opened.
    The size is checked twice, by fstat and by reading at most `max_bytes + 1` bytes, so a
    file that grows (or lies about its size, like /proc files) still cannot exceed the cap.

    Raises:
        FetchError: not a regular file, or over the size limit (naming the limit).
        OSError: the file cannot be opened or read (e.g. permission denied, a link loop);
            `describe_os_error` words it for the user.
    """
    fd = os.open(ref.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FetchError("is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise FetchError(f"not a regular file: {file_kind(info.st_mode)}")
        if info.st_size > max_bytes:
            raise FetchError(too_large(info.st_size, max_bytes))
        data = _read_at_most(fd, max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise FetchError(too_large(None, max_bytes))
    return data
