"""Find the inputs to read (files, folders, URLs) and fetch their bytes.

Discovery turns what the user named into `SourceRef`s in a deterministic order and reports
what it cannot use; fetching turns a ref into bytes, raising `FetchError` with a reason that is
shown to the user as it is.
"""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from index.models import SourceFailure

DEFAULT_EXCLUDES: tuple[str, ...] = ("LICENSE*", "README*", ".*")
SUPPORTED_EXTENSIONS: tuple[str, ...] = (".txt", ".md", ".html", ".htm", ".json", ".jsonl")
USER_AGENT = "articleqa/0.1"
HTML_CONTENT_TYPES = ("text/html", "application/xhtml+xml")
# Article pages and files are far smaller; this bounds memory if an input is something huge.
MAX_INPUT_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class FetchPolicy:
    """Limits and address rules for reading every input (URLs and local files).

    Attributes:
        timeout: seconds allowed for one URL, from connecting to the last byte.
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


@dataclass(frozen=True)
class FileRef:
    """A file to read, with the folder it was found under (None when named directly)."""

    path: Path
    root: Path | None = None

    @property
    def origin(self) -> str:
        """The absolute resolved path, as recorded on articles and failures."""
        return str(self.path.resolve())

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
    """A page could not be fetched; the message is the failure reason."""


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
            failures.append(SourceFailure(origin=str(folder), reason=exc.strerror or str(exc)))
            continue
        subfolders = []
        for entry in entries:
            rel = entry.relative_to(root).as_posix()
            pattern = _excluded_by(rel, entry.name, exclude)
            if pattern is not None:
                skipped.append(SourceFailure(origin=str(entry), reason=f"excluded by pattern {pattern!r}"))
            elif entry.name.startswith("."):
                kind = "folder" if entry.is_dir() else "file"
                skipped.append(SourceFailure(origin=str(entry), reason=f"hidden {kind}"))
            elif entry.is_symlink() and entry.is_dir():
                # Not followed: a link back up the tree would make the walk endless.
                skipped.append(SourceFailure(origin=str(entry), reason="symbolic link to a folder, not followed"))
            elif entry.is_dir():
                subfolders.append(entry)
            elif not entry.is_file():
                skipped.append(SourceFailure(origin=str(entry), reason="not a regular file"))
            elif entry.suffix.lower() not in SUPPORTED_EXTENSIONS:
                what = f"extension {entry.suffix!r}" if entry.suffix else "no file extension"
                skipped.append(SourceFailure(origin=str(entry), reason=f"unsupported {what} (supported: {supported_list()})"))
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
    paths) matching an `exclude` glob are skipped. A file named directly is always read
    when its extension is supported. A file reached twice is read once.

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
        origin = str(path.resolve())
        try:
            path.stat()
        except FileNotFoundError:
            failures.append(SourceFailure(origin=origin, reason="no such file or directory"))
            continue
        except OSError as exc:
            failures.append(SourceFailure(origin=origin, reason=exc.strerror or str(exc)))
            continue
        if path.is_dir():
            _walk(path.resolve(), exclude, refs, failures, skipped)
        elif not path.is_file():
            failures.append(SourceFailure(origin=origin, reason="not a regular file"))
        elif path.suffix.lower() not in SUPPORTED_EXTENSIONS:
            what = f"file extension {path.suffix!r}" if path.suffix else "file without extension"
            failures.append(SourceFailure(origin=origin, reason=f"unsupported {what} (supported: {supported_list()})"))
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


def read_file_bytes(ref: FileRef) -> bytes:
    """Read a file; raises OSError (e.g. permission denied) for the caller to report."""
    return ref.path.read_bytes()


def fetch_page(url: str, *, policy: FetchPolicy) -> tuple[str | bytes, str]:
    """Download an HTML page.

    Args:
        url: the `http(s)://` URL.
        policy: time and size limits and the addresses that may be fetched.

    Returns:
        `(html, final_url)`: the page as text when the response names its charset, else as
        bytes for trafilatura to decode; and the URL after redirects.

    Raises:
        FetchError: non-2xx status, unreachable host, timeout, too many redirects, a
            non-HTML content type, or a page over the size limit.
    """
    timeout, max_bytes = policy.timeout, policy.max_bytes
    try:
        # trust_env=False: no proxy or certificate settings are read from the environment.
        with httpx.Client(timeout=timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT}, trust_env=False) as client:
            with client.stream("GET", url) as response:
                if not response.is_success:
                    raise FetchError(f"HTTP {response.status_code} {response.reason_phrase}".strip())
                mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
                # A missing content type is given a chance: trafilatura rejects non-HTML.
                if mime and mime not in HTML_CONTENT_TYPES:
                    raise FetchError(f"unsupported content type {mime!r} (expected an HTML page)")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise FetchError(f"page larger than the limit of {max_bytes} bytes")
                final_url = str(response.url)
                charset = response.charset_encoding
    except httpx.TimeoutException:
        raise FetchError(f"timed out after {timeout:g}s") from None
    except httpx.ConnectError as exc:
        raise FetchError(f"could not connect: {exc}") from None
    except httpx.TooManyRedirects:
        raise FetchError("too many redirects") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise FetchError(f"invalid URL: {exc}") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"request failed: {type(exc).__name__}: {exc}") from None
    if not body.strip():
        raise FetchError("the page is empty")
    if charset:
        try:
            return bytes(body).decode(charset, errors="replace"), final_url
        except LookupError:
            pass  # an unknown charset name: let trafilatura guess
    return bytes(body), final_url

