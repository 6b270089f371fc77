"""Fetch an article page, a feed or a sitemap safely: public addresses only, one deadline, bounded size.

`fetch_url` is the one way out to the network (`fetch_page` is its HTML-page form). Every
address a host resolves to, including after each redirect, must be public unless the policy
allows it (`index.sources.FetchPolicy`); the connection goes to the address that was checked (a
pinned httpcore network backend), so DNS rebinding cannot swap it; one deadline covers DNS to
the last byte; compressed bodies are decoded within the size cap. Conditional requests (ETag,
Last-Modified) and the errors worth retrying later (`TransientFetchError`, with the server's
Retry-After) are here for the feed poller (`index.watch`).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpcore
import httpx

from articleqa.index.sources import (
    HTML_CONTENT_TYPES,
    TIMEOUT_SETTING,
    USER_AGENT,
    FetchError,
    FetchPolicy,
    IPNetwork,
    too_large,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ADDRESS_HINT = "set ARTICLEQA_ALLOW_PRIVATE_URLS=true or add it to ARTICLEQA_ALLOWED_NETWORKS to allow it"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Statuses that say "not now" rather than "never": the feed poller retries them later.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Only encodings decoded here, with a bound on the output (see `_bounded_decode`).
ACCEPT_ENCODING = "gzip, deflate"
# What news feeds and sitemaps are served as (gzip: a compressed sitemap file, `sitemap.xml.gz`).
FEED_CONTENT_TYPES = (
    "application/rss+xml",
    "application/atom+xml",
    "application/rdf+xml",
    "application/xml",
    "text/xml",
    "application/gzip",
    "application/x-gzip",
)
PAGE_OR_FEED_TYPES = HTML_CONTENT_TYPES + FEED_CONTENT_TYPES

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


# --- what a fetch gives --------------------------------------------------------------------


class TransientFetchError(FetchError):
    """A failure worth retrying later: a timeout, a connection problem, or HTTP 408, 425, 429
    or 5xx. `retry_after` is the server's Retry-After in seconds from now, when it sent one."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Fetched:
    """One response that `fetch_url` accepted.

    Attributes:
        url: the URL after redirects.
        status: 200 (or another 2xx), or 304 when a conditional request found no change.
        body: the decoded body; empty for 304.
        content_type: the media type, lower case, without parameters ("" when not sent).
        charset: the charset the Content-Type names, if any.
        etag, last_modified: the validators to send next time (If-None-Match,
            If-Modified-Since), as the server wrote them.
    """

    url: str
    status: int
    body: bytes
    content_type: str = ""
    charset: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    def page(self) -> str | bytes:
        """The body as text when the charset is named and known, else as bytes for trafilatura."""
        if self.charset:
            try:
                return self.body.decode(self.charset, errors="replace")
            except LookupError:
                pass  # an unknown charset name: let trafilatura guess
        return self.body


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header as seconds from now: delay-seconds ("120") or an HTTP date.

    Returns:
        The seconds to wait (0 for a date in the past), or None for a missing or unreadable value.
    """
    if not value or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


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

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(
            ssl_context, server_hostname, self._deadline.clamp(timeout, httpcore.ConnectTimeout)
        )
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

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
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
        raise FetchError(
            f"refused: the page redirects to {location!r}; only http:// and https:// redirects are followed"
        )
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


def _check_response(response: httpx.Response, max_bytes: int, accept: tuple[str, ...]) -> str:
    """Refuse an error status, a content type not in `accept` or a declared size over the cap.

    Returns:
        The Content-Encoding to decode (lower case).

    Raises:
        TransientFetchError: a status worth retrying later (with the server's Retry-After).
        FetchError: any other refusal.
    """
    if not response.is_success:
        message = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        if response.status_code in RETRY_STATUSES:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            raise TransientFetchError(message, status=response.status_code, retry_after=retry_after)
        raise FetchError(message)
    mime = _media_type(response)
    # A missing content type is given a chance: trafilatura rejects non-HTML.
    if mime and mime not in accept:
        expected = "an HTML page" if accept == HTML_CONTENT_TYPES else "an HTML page, a news feed or a sitemap"
        raise FetchError(f"unsupported content type {mime!r} (expected {expected})")
    encoding = response.headers.get("content-encoding", "").strip().lower()
    _decompressor(encoding)  # refuse an unsupported encoding before reading anything
    declared = response.headers.get("content-length", "")
    if encoding in ("", "identity") and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(too_large(int(declared), max_bytes, "page"))
    return encoding


def _media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


def fetch_url(
    url: str,
    *,
    policy: FetchPolicy,
    accept: tuple[str, ...] = HTML_CONTENT_TYPES,
    etag: str | None = None,
    last_modified: str | None = None,
) -> Fetched:
    """Download `url` under `policy`: an HTML page, or a feed or sitemap when `accept` says so.

    Only http(s) URLs whose host resolves to allowed addresses only (public ones, unless
    `policy.allow_private` or `policy.allowed_networks` say otherwise) are fetched, and each
    redirect target is checked the same way. The connection goes to the checked addresses
    (`_PinnedBackend`), `policy.timeout` bounds the whole fetch and `policy.max_bytes` the
    decoded body.

    Args:
        url: the `http(s)://` URL.
        policy: time and size limits and the addresses that may be fetched.
        accept: the media types accepted (a response without a Content-Type is accepted too).
        etag, last_modified: validators from an earlier response; sent as If-None-Match and
            If-Modified-Since, so that an unchanged document comes back as a bodiless 304.

    Returns:
        The response: status, body, media type, charset and the validators to send next time.

    Raises:
        TransientFetchError: the deadline, no connection, or HTTP 408, 425, 429 or 5xx.
        FetchError: a refused address or scheme, another non-2xx status, too many redirects,
            a content type not accepted, or a body over the limit; the message names the
            setting that would change the outcome where there is one.
    """
    deadline = _Deadline(policy.timeout)
    backend = _PinnedBackend(deadline)
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING}
    conditional = {"If-None-Match": etag, "If-Modified-Since": last_modified}
    headers.update({name: value for name, value in conditional.items() if value})
    try:
        start = httpx.URL(url.strip())
        with httpx.Client(
            transport=_PinnedTransport(backend),
            headers=headers,
            timeout=policy.timeout,
            follow_redirects=False,
            trust_env=False,  # no proxy or certificate settings from the environment
        ) as client:
            response, final = _follow(client, backend, start, policy, deadline)
            try:
                validators = _validators(response.headers)
                if response.status_code == 304 and (etag or last_modified):
                    return Fetched(url=str(final), status=304, body=b"", **validators)
                encoding = _check_response(response, policy.max_bytes, accept)
                body = _bounded_decode(response.iter_raw(), encoding, policy.max_bytes, deadline)
                fetched = Fetched(
                    url=str(final),
                    status=response.status_code,
                    body=body,
                    content_type=_media_type(response),
                    charset=response.charset_encoding,
                    **validators,
                )
            finally:
                response.close()
    except (httpx.TimeoutException, httpcore.TimeoutException):
        raise TransientFetchError(f"timed out after {policy.timeout:g}s (the limit set by {TIMEOUT_SETTING})") from None
    except (httpx.ConnectError, httpcore.ConnectError) as exc:
        raise TransientFetchError(f"could not connect: {exc}") from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol, httpcore.UnsupportedProtocol) as exc:
        raise FetchError(f"invalid URL: {exc}") from None
    except (httpx.HTTPError, httpcore.NetworkError, httpcore.ProtocolError) as exc:
        raise TransientFetchError(f"request failed: {type(exc).__name__}: {exc}") from None
    if not body.strip():
        raise FetchError("the page is empty")
    return fetched


def _validators(headers: Mapping[str, str]) -> dict[str, str | None]:
    """The ETag and Last-Modified of a response, for the next conditional request."""
    return {"etag": headers.get("etag") or None, "last_modified": headers.get("last-modified") or None}


def fetch_page(url: str, *, policy: FetchPolicy) -> tuple[str | bytes, str]:
    """Download an HTML page under `policy` (see `fetch_url` for the rules and errors).

    Returns:
        `(html, final_url)`: the page as text when the response names its charset, else as
        bytes for trafilatura to decode; and the URL after redirects.
    """
    fetched = fetch_url(url, policy=policy)
    return fetched.page(), fetched.url
