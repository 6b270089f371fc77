"""Find the inputs to read (files, folders, URLs) and fetch their bytes, safely.

Discovery turns what the user named into `SourceRef`s in a deterministic order and reports
what it cannot use; fetching turns a ref into bytes, raising `FetchError` with a reason that is
shown to the user as it is.

Every read happens under a `FetchPolicy`, because inputs may come from people who do not run
the server (URLs and uploads in the web app): a URL may only reach public addresses, checked
for every redirect and pinned against DNS rebinding; a fetch has one total deadline; and files
and pages (decoded) have a size cap. Special files (FIFOs, devices) are never opened blocking.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import ipaddress
import os
import socket
import stat
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx

from index.models import SourceFailure

DEFAULT_EXCLUDES: tuple[str, ...] = ("LICENSE*", "README*", ".*")
SUPPORTED_EXTENSIONS: tuple[str, ...] = (".txt", ".md", ".html", ".htm", ".json", ".jsonl")
USER_AGENT = "articleqa/0.1"
HTML_CONTENT_TYPES = ("text/html", "application/xhtml+xml")
# Article pages and files are far smaller; this bounds memory if an input is something huge.
MAX_INPUT_BYTES = 20 * 1024 * 1024
# The settings that change a refusal, named in the messages so the user knows the way out.
SIZE_SETTING = "ARTICLEQA_MAX_INPUT_MB"
TIMEOUT_SETTING = "ARTICLEQA_FETCH_TIMEOUT"
ADDRESS_HINT = "set ARTICLEQA_ALLOW_PRIVATE_URLS=true or add it to ARTICLEQA_ALLOWED_NETWORKS to allow it"
BAD_NAME_REASON = "the file name is not valid UTF-8 (rename the file to index it)"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Only encodings decoded here, with a bound on the output (see `_bounded_decode`).
ACCEPT_ENCODING = "gzip, deflate"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
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

    timeout: float = 20.0
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


def _walk(root: Path, exclude: Sequence[str], refs: list[SourceRef], failures: list[SourceFailure], skipped: list[SourceFailure]) -> None:
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
                skipped.append(SourceFailure(origin=shown, reason=f"unsupported {what} (supported: {supported_list()})"))
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
    extension is supported; named directly, those special files are failures. A folder named
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
            failures.append(SourceFailure(origin=item, reason=f"unsupported URL scheme {scheme!r} (use http:// or https://)"))
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
        elif path.suffix.lower() not in SUPPORTED_EXTENSIONS:
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


# --- which addresses may be fetched --------------------------------------------------------

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64, 6to4), else None.

    `::ffff:127.0.0.1` reaches 127.0.0.1, so it must be judged as 127.0.0.1.
    """
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def address_kind(ip: IPAddress) -> str | None:
    """None for a public (globally routable unicast) address, else what it is, for messages.

    Returns:
        e.g. "a loopback address", "a private address", "a link-local address".
    """
    inner = embedded_ipv4(ip)
    if inner is not None:
        return address_kind(inner)
    checks = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED, "a shared (carrier-grade NAT) address"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "a site-local address"),
        (not ip.is_global, "not a public address"),
    )
    return next((kind for hit, kind in checks if hit), None)


def _in_networks(ip: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    """True when `ip` (or the IPv4 address it embeds) lies in one of `networks`."""
    candidates = [ip, embedded_ipv4(ip)]
    return any(c is not None and c.version == net.version and c in net for net in networks for c in candidates)


def refusal(ip: IPAddress, policy: FetchPolicy) -> str | None:
    """Why `ip` may not be fetched under `policy` (e.g. "a loopback address"), or None."""
    kind = address_kind(ip)
    if kind is None or policy.allow_private or _in_networks(ip, policy.networks):
        return None
    return kind


# --- the fetch -----------------------------------------------------------------------------


class _Deadline:
    """One point in time by which the whole fetch (DNS, every hop, every byte) must end."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def clamp(self, timeout: float | None, error: type[Exception]) -> float:
        """The timeout for the next network operation: never past the deadline."""
        left = self.left()
        if left <= 0:
            raise error("the fetch deadline has passed")
        return left if timeout is None else min(timeout, left)

    def check(self) -> None:
        if self.left() <= 0:
            raise httpx.ReadTimeout("the fetch deadline has passed")


def _resolve(host: str, port: int, deadline: _Deadline) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order, within the deadline.

    getaddrinfo has no timeout of its own, so it runs in a daemon thread; a resolver that
    hangs leaves that thread behind (it ends when the system resolver gives up).
    """
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass  # a name (or a numeric spelling like 2130706433): ask the resolver
    found: list[Any] = []
    errors: list[OSError] = []

    def lookup() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            errors.append(exc)

    worker = threading.Thread(target=lookup, name="articleqa-resolve", daemon=True)
    worker.start()
    worker.join(max(deadline.left(), 0))
    if worker.is_alive():
        raise httpx.ConnectTimeout(f"resolving {host} took too long")
    if errors:
        raise FetchError(f"could not resolve host {host!r}: {errors[0].strerror or errors[0]}")
    addresses: list[IPAddress] = []
    for *_, sockaddr in found:
        ip = ipaddress.ip_address(sockaddr[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise FetchError(f"could not resolve host {host!r}: no addresses")
    return addresses


def _is_literal(host: str, ip: IPAddress) -> bool:
    """True when the URL names the address itself (in any standard spelling)."""
    try:
        return ipaddress.ip_address(host) == ip
    except ValueError:
        return False


def _checked_addresses(url: httpx.URL, policy: FetchPolicy, deadline: _Deadline, redirect: bool) -> list[IPAddress]:
    """The addresses of `url`'s host, all of them allowed by `policy`, or FetchError.

    Every address must pass, not just the first: a name resolving to one public and one
    private address could otherwise be steered to the private one.
    """
    where = f"the page redirects to {url}; " if redirect else ""
    if url.scheme not in ("http", "https"):
        raise FetchError(f"refused: {where}only http:// and https:// URLs are fetched")
    host = url.raw_host.decode("ascii")
    if not host:
        raise FetchError(f"invalid URL {str(url)!r}: no host name")
    for ip in (addresses := _resolve(host, url.port or (443 if url.scheme == "https" else 80), deadline)):
        kind = refusal(ip, policy)
        if kind is not None:
            named = f"{url.host} is {kind}" if _is_literal(url.host, ip) else f"{url.host} resolves to {ip}, {kind}"
            raise FetchError(f"refused: {where}{named} ({ADDRESS_HINT})")
    return addresses


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake ends by the deadline.

    httpx's own timeouts apply to each operation, so a server sending one byte every few
    seconds (headers or body) would never trip them; clamping each one to the time left
    makes the fetch's timeout a total deadline.
    """

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, self._deadline.clamp(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Opens connections only to the addresses `fetch_page` checked for each host.

    This closes the DNS-rebinding gap: the host name is never resolved again between the
    check and the connection. The URL keeps its host name, so the Host header, TLS SNI and
    certificate verification are httpx's usual ones; only the socket's address is pinned.
    """

    def __init__(self, deadline: _Deadline) -> None:
        self.pins: dict[str, list[IPAddress]] = {}
        self._deadline = deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.pins.get(host)
        if not addresses:  # a connection fetch_page did not check: never made
            raise httpcore.ConnectError(f"{host} was not checked before connecting")
        error: Exception = httpcore.ConnectError(f"could not connect to {host}")
        for ip in addresses:  # like socket.create_connection, but over checked addresses only
            try:
                stream = self._inner.connect_tcp(
                    str(ip), port, self._deadline.clamp(timeout, httpcore.ConnectTimeout), local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise error

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("Unix sockets are never fetched")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _PinnedTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool that uses `_PinnedBackend` (public APIs only).

    httpcore errors are not mapped to httpx ones here; `fetch_page` words both.
    """

    def __init__(self, backend: _PinnedBackend) -> None:
        # trust_env=False: no certificate settings from the environment either.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), network_backend=backend, retries=0
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        response = self._pool.handle_request(core)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_CoreStream(response),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


class _CoreStream(httpx.SyncByteStream):
    """The raw body of an httpcore response, as httpx wants it."""

    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        yield from self._response.stream  # type: ignore[union-attr]

    def close(self) -> None:
        self._response.close()


def _decompressor(encoding: str) -> Any:
    """A zlib decompressor for a Content-Encoding, None for identity; FetchError otherwise."""
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise FetchError(f"unsupported content encoding {encoding!r} (accepted: {ACCEPT_ENCODING})")


def _bounded_decode(raw: Iterable[bytes], encoding: str, limit: int, deadline: _Deadline) -> bytes:
    """The decoded body, never holding more than `limit + 1` decoded bytes.

    Decoding here rather than in httpx bounds every step (`max_length`), so a gzip bomb
    (a few KB that inflate to gigabytes) fails at the limit instead of filling memory.
    Layered encodings (`gzip, gzip`) are refused by `_decompressor`.
    """
    decoder = _decompressor(encoding)
    body = bytearray()
    try:
        for chunk in raw:
            pending = chunk
            while pending and len(body) <= limit:
                if decoder is None:
                    body += pending
                    break
                body += decoder.decompress(pending, limit + 1 - len(body))
                pending = decoder.unconsumed_tail
            if len(body) > limit:
                break
            deadline.check()
        if decoder is not None and len(body) <= limit:
            body += decoder.flush(limit + 1 - len(body))
    except zlib.error as exc:
        raise FetchError(f"the page's {encoding} data is corrupt: {exc}") from None
    if len(body) > limit:
        what = "page (decompressed)" if decoder is not None else "page"
        raise FetchError(too_large(None, limit, what))
    return bytes(body)


def _redirect_target(current: httpx.URL, location: str) -> httpx.URL:
    """The absolute URL a Location header points to; only http(s) targets are followed."""
    try:
        target = current.join(location.strip())
    except httpx.InvalidURL:
        raise FetchError(f"refused: the page redirects to an invalid URL {location!r}") from None
    if target.scheme not in ("http", "https"):
        raise FetchError(f"refused: the page redirects to {location!r}; only http:// and https:// redirects are followed")
    return target


def _follow(
    client: httpx.Client, backend: _PinnedBackend, start: httpx.URL, policy: FetchPolicy, deadline: _Deadline
) -> tuple[httpx.Response, httpx.URL]:
    """GET `start`, following redirects by hand so that every hop's address is checked.

    Returns:
        The first non-redirect response (open, streaming; the caller closes it) and its URL.
    """
    target = start
    for hop in range(policy.max_redirects + 1):
        backend.pins[target.raw_host.decode("ascii")] = _checked_addresses(target, policy, deadline, redirect=hop > 0)
        response = client.send(client.build_request("GET", target), stream=True)
        location = response.headers.get("location")
        if response.status_code not in REDIRECT_STATUSES or not location:
            return response, target
        response.close()
        target = _redirect_target(target, location)
    raise FetchError(f"too many redirects (more than {policy.max_redirects})")


def _check_response(response: httpx.Response, max_bytes: int) -> str:
    """Refuse an error status, a non-HTML type or a declared size over the cap.

    Returns:
        The Content-Encoding to decode (lower case).
    """
    if not response.is_success:
        raise FetchError(f"HTTP {response.status_code} {response.reason_phrase}".strip())
    mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
    # A missing content type is given a chance: trafilatura rejects non-HTML.
    if mime and mime not in HTML_CONTENT_TYPES:
        raise FetchError(f"unsupported content type {mime!r} (expected an HTML page)")
    encoding = response.headers.get("content-encoding", "").strip().lower()
    _decompressor(encoding)  # refuse an unsupported encoding before reading anything
    declared = response.headers.get("content-length", "")
    if encoding in ("", "identity") and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(too_large(int(declared), max_bytes, "page"))
    return encoding


def fetch_page(url: str, *, policy: FetchPolicy) -> tuple[str | bytes, str]:
    """Download an HTML page under `policy`.

    Only http(s) URLs whose host resolves to allowed addresses only (public ones, unless
    `policy.allow_private` or `policy.allowed_networks` say otherwise) are fetched, and each
    redirect target is checked the same way. The connection goes to the checked addresses
    (`_PinnedBackend`), `policy.timeout` bounds the whole fetch and `policy.max_bytes` the
    decoded body.

    Args:
        url: the `http(s)://` URL.
        policy: time and size limits and the addresses that may be fetched.

    Returns:
        `(html, final_url)`: the page as text when the response names its charset, else as
        bytes for trafilatura to decode; and the URL after redirects.

    Raises:
        FetchError: a refused address or scheme, non-2xx status, unreachable host, the
            deadline, too many redirects, a non-HTML content type, or a page over the limit;
            the message names the setting that would change the outcome where there is one.
    """
    deadline = _Deadline(policy.timeout)
    backend = _PinnedBackend(deadline)
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING}
    try:
        start = httpx.URL(url.strip())
        with httpx.Client(
            transport=_PinnedTransport(backend), headers=headers, timeout=policy.timeout,
            follow_redirects=False, trust_env=False,  # no proxy or certificate settings from the environment
        ) as client:
            response, final = _follow(client, backend, start, policy, deadline)
            try:
                encoding = _check_response(response, policy.max_bytes)
                body = _bounded_decode(response.iter_raw(), encoding, policy.max_bytes, deadline)
                charset = response.charset_encoding
            finally:
                response.close()
    except (httpx.TimeoutException, httpcore.TimeoutException):
        raise FetchError(f"timed out after {policy.timeout:g}s (the limit set by {TIMEOUT_SETTING})") from None
    except (httpx.ConnectError, httpcore.ConnectError) as exc:
        raise FetchError(f"could not connect: {exc}") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpcore.UnsupportedProtocol) as exc:
        raise FetchError(f"invalid URL: {exc}") from None
    except (httpx.HTTPError, httpcore.NetworkError, httpcore.ProtocolError) as exc:
        raise FetchError(f"request failed: {type(exc).__name__}: {exc}") from None
    if not body.strip():
        raise FetchError("the page is empty")
    if charset:
        try:
            return body.decode(charset, errors="replace"), str(final)
        except LookupError:
            pass  # an unknown charset name: let trafilatura guess
    return body, str(final)
