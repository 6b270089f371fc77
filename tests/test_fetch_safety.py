"""Fetching is safe by default: address rules, redirects, one total deadline, a size cap.

Real HTTP servers run on loopback. Linux routes all of 127.0.0.0/8 to `lo`, so the "public
news site" listens on 127.0.0.2 and the policies under test allow exactly 127.0.0.2/32; a
second server on 127.0.0.1 plays the internal service that must never be reached, and
counts its requests to prove it.
"""

from __future__ import annotations

import gzip
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpcore
import httpx
import pytest

from articleqa.index.fetch import address_kind, embedded_ipv4, fetch_page, refusal
from articleqa.index.sources import FetchError, FetchPolicy

PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>Ferry timetable changes</title></head>
<body><article><h1>Ferry timetable changes</h1>
<p>The island ferry will sail every forty minutes from Monday, the operator said on Friday.</p>
<p>Extra evening crossings were added after a petition signed by 2,300 residents.</p>
</article></body></html>"""
HINT = "(set ARTICLEQA_ALLOW_PRIVATE_URLS=true or add it to ARTICLEQA_ALLOWED_NETWORKS to allow it)"
SITE_ONLY = FetchPolicy(timeout=5, allowed_networks=("127.0.0.2/32",))
LIMIT = 1_000_000


class Site:
    """A real HTTP server on one loopback address, with named routes and a request log."""

    def __init__(self, host: str, routes: dict[str, Callable[[BaseHTTPRequestHandler, Site], None]]) -> None:
        self.routes = routes
        self.paths: list[str] = []
        self.hosts: list[str] = []
        self.stop = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                site.paths.append(self.path)
                site.hosts.append(self.headers.get("Host", ""))
                route = site.routes.get(self.path.split("?")[0], _not_found)
                try:
                    route(self, site)
                except OSError:  # the client gave up (deadline, size limit): expected here
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host = host
        self.port = self.server.server_address[1]
        self.scheme = "http"

    def url(self, path: str, host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def start(self) -> Site:
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", **headers: str) -> None:
    """Answer with `body`; keyword headers spell dashes as underscores (Content_Type=...)."""
    named = {"Content-Type": "text/html; charset=utf-8", "Content-Length": str(len(body))}
    named.update({name.replace("_", "-"): value for name, value in headers.items()})
    handler.send_response(status)
    for name, value in named.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


def _not_found(handler: BaseHTTPRequestHandler, site: Site) -> None:
    send(handler, 404, b"<html><body>Not here</body></html>")


def redirect(location: Callable[[Site], str]) -> Callable[[BaseHTTPRequestHandler, Site], None]:
    return lambda handler, site: send(handler, 302, Location=location(site))


def chain(handler: BaseHTTPRequestHandler, site: Site) -> None:
    """/chain?n=3 redirects to /chain?n=2 ... /chain?n=0 answers with the page."""
    n = int(handler.path.split("n=")[1])
    if n == 0:
        send(handler, 200, PAGE)
    else:
        send(handler, 302, Location=f"/chain?n={n - 1}")


def never_answers(handler: BaseHTTPRequestHandler, site: Site) -> None:
    site.stop.wait(30)


def drip_body(handler: BaseHTTPRequestHandler, site: Site) -> None:
    """Headers at once, then one byte of a long page every 0.2 s."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    handler.wfile.flush()
    while not site.stop.wait(0.2):
        handler.wfile.write(b"<")
        handler.wfile.flush()


def drip_headers(handler: BaseHTTPRequestHandler, site: Site) -> None:
    """The status line, then one header byte every 0.2 s: each read succeeds, none ends."""
    handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
    handler.wfile.flush()
    while not site.stop.wait(0.2):
        handler.wfile.write(b"X")
        handler.wfile.flush()


def gzip_bomb() -> bytes:
    """64 MiB of zeros, gzip-compressed to about 64 KB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    return b"".join(packer.compress(block) for _ in range(64)) + packer.flush()


BOMB = gzip_bomb()


def big_undeclared(handler: BaseHTTPRequestHandler, site: Site) -> None:
    """2 MB of page with no Content-Length (the end is the connection closing)."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Connection", "close")
    handler.end_headers()
    for _ in range(20):
        handler.wfile.write(b"<p>" + b"x" * 100_000 + b"</p>")
    handler.close_connection = True


ROUTES: dict[str, Callable[[BaseHTTPRequestHandler, Site], None]] = {
    "/page": lambda h, s: send(h, 200, PAGE),
    "/gzip-page": lambda h, s: send(h, 200, gzip.compress(PAGE), Content_Encoding="gzip"),
    "/chain": chain,
    "/to-file": redirect(lambda s: "file:///etc/passwd"),
    "/to-gopher": redirect(lambda s: "gopher://127.0.0.2/"),
    "/never": never_answers,
    "/drip": drip_body,
    "/drip-headers": drip_headers,
    "/bomb": lambda h, s: send(h, 200, BOMB, Content_Encoding="gzip"),
    "/double-gzip": lambda h, s: send(h, 200, gzip.compress(gzip.compress(PAGE)), Content_Encoding="gzip, gzip"),
    "/brotli": lambda h, s: send(h, 200, b"\x0b\x03", Content_Encoding="br"),
    "/big-declared": lambda h, s: send(h, 200, b"x" * 2_000_000),
    "/big-undeclared": big_undeclared,
}


@pytest.fixture
def internal() -> Iterator[Site]:
    """The service on 127.0.0.1 that nothing may reach."""
    site = Site("127.0.0.1", {"/secret": lambda h, s: send(h, 200, PAGE)}).start()
    yield site
    site.close()


@pytest.fixture
def news(internal: Site) -> Iterator[Site]:
    """The allowed site on 127.0.0.2; /to-internal redirects to the internal service."""
    routes = {**ROUTES, "/to-internal": redirect(lambda s: internal.url("/secret"))}
    routes["/to-localhost"] = redirect(lambda s: internal.url("/secret", host="localhost"))
    routes["/to-mapped"] = redirect(lambda s: internal.url("/secret", host="[::ffff:127.0.0.1]"))
    site = Site("127.0.0.2", routes).start()
    yield site
    site.close()


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record (and refuse) every TCP connection attempt the fetch makes."""
    attempts: list[tuple[str, int]] = []

    def connect_tcp(self, host: str, port: int, *args: object, **kwargs: object) -> None:
        attempts.append((host, port))
        raise AssertionError(f"a connection to {host}:{port} was attempted")

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", connect_tcp)
    return attempts


def fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, Callable[[], list[str]]]) -> list[str]:
    """Make `socket.getaddrinfo` answer the given names; other names resolve for real."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            asked.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answers[host]()]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def fetch_error(url: str, policy: FetchPolicy = SITE_ONLY) -> str:
    with pytest.raises(FetchError) as caught:
        fetch_page(url, policy=policy)
    return str(caught.value)


# --- the allowed path works ------------------------------------------------------------------


@pytest.mark.integration
def test_an_allowed_network_is_fetched_and_gzip_is_decoded(news: Site):
    html, final = fetch_page(news.url("/page"), policy=SITE_ONLY)
    assert "forty minutes" in html and final == news.url("/page")
    html, _ = fetch_page(news.url("/gzip-page"), policy=SITE_ONLY)
    assert "forty minutes" in html
    assert news.hosts == [f"127.0.0.2:{news.port}"] * 2


@pytest.mark.integration
def test_allow_private_lets_loopback_through(internal: Site):
    html, _ = fetch_page(internal.url("/secret"), policy=FetchPolicy(allow_private=True))
    assert "forty minutes" in html
    assert internal.paths == ["/secret"]


@pytest.mark.integration
def test_redirects_within_the_limit_are_followed(news: Site):
    html, final = fetch_page(
        news.url("/chain?n=3"), policy=FetchPolicy(allowed_networks=("127.0.0.2/32",), max_redirects=3)
    )
    assert "forty minutes" in html
    assert final == news.url("/chain?n=0")


# --- addresses that are refused ----------------------------------------------------------------


@pytest.mark.integration
def test_the_default_policy_refuses_the_loopback_site_without_a_request(internal: Site):
    message = fetch_error(internal.url("/secret"), FetchPolicy())
    assert message == f"refused: 127.0.0.1 is a loopback address {HINT}"
    assert internal.paths == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1/", "refused: 127.0.0.1 is a loopback address"),
        ("http://localhost:8080/admin", "refused: localhost resolves to 127.0.0.1, a loopback address"),
        ("http://10.0.0.1/", "refused: 10.0.0.1 is a private address"),
        ("http://192.168.1.1/", "refused: 192.168.1.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "refused: 169.254.169.254 is a link-local address"),
        ("http://[::1]:8000/", "refused: ::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "refused: ::ffff:127.0.0.1 is a loopback address"),
        ("http://[fd00::1]/", "refused: fd00::1 is a private address"),
        ("http://0.0.0.0:80/", "refused: 0.0.0.0 is an unspecified address"),
        ("http://2130706433/", "refused: 2130706433 resolves to 127.0.0.1, a loopback address"),
        ("http://127.1/", "refused: 127.1 resolves to 127.0.0.1, a loopback address"),
        ("http://100.64.0.1/", "refused: 100.64.0.1 is a shared (carrier-grade NAT) address"),
        ("http://224.0.1.1/", "refused: 224.0.1.1 is a multicast address"),
    ],
)
def test_the_default_policy_refuses_non_public_addresses_without_connecting(url, expected, no_connections):
    start = time.monotonic()
    assert fetch_error(url, FetchPolicy()) == f"{expected} {HINT}"
    assert no_connections == []
    assert time.monotonic() - start < 2


def test_a_name_with_one_private_address_among_public_ones_is_refused(monkeypatch, no_connections):
    fake_dns(monkeypatch, {"mixed.test": lambda: ["93.184.216.34", "10.0.0.7"]})
    message = fetch_error("http://mixed.test/news", FetchPolicy())
    assert message == f"refused: mixed.test resolves to 10.0.0.7, a private address {HINT}"
    assert no_connections == []


@pytest.mark.integration
def test_allowed_networks_allow_only_those_networks(internal: Site):
    policy = FetchPolicy(allowed_networks=("127.0.0.2/32",))
    assert fetch_error(internal.url("/secret"), policy) == f"refused: 127.0.0.1 is a loopback address {HINT}"
    assert internal.paths == []


def test_non_http_schemes_are_refused(no_connections):
    assert fetch_error("ftp://127.0.0.2/file") == "refused: only http:// and https:// URLs are fetched"
    assert fetch_error("file:///etc/passwd") == "refused: only http:// and https:// URLs are fetched"
    assert no_connections == []


# --- redirects ---------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_redirect_to_loopback_is_refused_and_never_requested(news: Site, internal: Site):
    message = fetch_error(news.url("/to-internal"))
    target = internal.url("/secret")
    assert message == f"refused: the page redirects to {target}; 127.0.0.1 is a loopback address {HINT}"
    assert news.paths == ["/to-internal"]
    assert internal.paths == []


@pytest.mark.parametrize(
    ("path", "named"),
    [("/to-localhost", "localhost resolves to 127.0.0.1"), ("/to-mapped", "::ffff:127.0.0.1 is")],
)
@pytest.mark.integration
def test_a_redirect_to_loopback_by_another_spelling_is_refused(news: Site, internal: Site, path, named):
    message = fetch_error(news.url(path))
    assert message.startswith("refused: the page redirects to ") and f"; {named}" in message
    assert "a loopback address" in message
    assert internal.paths == []


@pytest.mark.integration
def test_a_redirect_chain_over_the_limit_fails(news: Site):
    policy = FetchPolicy(allowed_networks=("127.0.0.2/32",), max_redirects=2)
    assert fetch_error(news.url("/chain?n=3"), policy) == "too many redirects (more than 2)"
    assert news.paths == ["/chain?n=3", "/chain?n=2", "/chain?n=1"]


@pytest.mark.parametrize(
    ("path", "location"), [("/to-file", "file:///etc/passwd"), ("/to-gopher", "gopher://127.0.0.2/")]
)
@pytest.mark.integration
def test_a_redirect_to_another_scheme_is_refused(news: Site, path, location):
    message = fetch_error(news.url(path))
    assert message == f"refused: the page redirects to {location!r}; only http:// and https:// redirects are followed"


# --- DNS rebinding ----------------------------------------------------------------------------


@pytest.mark.integration
def test_the_connection_goes_to_the_checked_address_not_a_second_lookup(monkeypatch, news: Site, internal: Site):
    """A name that answers 127.0.0.2 (allowed) to the check and 127.0.0.1 afterwards."""
    answers = iter([["127.0.0.2"], ["127.0.0.1"], ["127.0.0.1"]])
    asked = fake_dns(monkeypatch, {"rebind.test": lambda: next(answers)})
    html, final = fetch_page(f"http://rebind.test:{news.port}/page", policy=SITE_ONLY)
    assert "forty minutes" in html and final == f"http://rebind.test:{news.port}/page"
    assert asked == ["rebind.test"]  # resolved once, for the check
    assert news.hosts == [f"rebind.test:{news.port}"]  # the Host header keeps the name
    assert internal.paths == []


@pytest.fixture
def tls_files(tmp_path: Path) -> dict[str, Path]:
    """A test CA and a certificate for news.test signed by it (made with the openssl CLI)."""
    openssl = shutil.which("openssl")
    # A missing part fails, never skips (the Makefile's test-packages installs openssl).
    assert openssl is not None, "the openssl command is not installed; cannot make test certificates"
    d = tmp_path

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, timeout=60)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(d / "ca.key"),
        "-out",
        str(d / "ca.pem"),
        "-days",
        "2",
        "-subj",
        "/CN=articleqa test CA",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(d / "site.key"),
        "-out",
        str(d / "site.csr"),
        "-subj",
        "/CN=news.test",
    )
    (d / "san.ext").write_text("subjectAltName=DNS:news.test\n")
    run(
        "x509",
        "-req",
        "-in",
        str(d / "site.csr"),
        "-CA",
        str(d / "ca.pem"),
        "-CAkey",
        str(d / "ca.key"),
        "-CAcreateserial",
        "-out",
        str(d / "site.pem"),
        "-days",
        "2",
        "-extfile",
        str(d / "san.ext"),
    )
    return {"ca": d / "ca.pem", "cert": d / "site.pem", "key": d / "site.key"}


@pytest.fixture
def tls_news(tls_files, monkeypatch) -> Iterator[Site]:
    """An HTTPS site on 127.0.0.2 with a certificate for news.test, trusted through the test CA."""
    site = Site("127.0.0.2", ROUTES)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tls_files["cert"], tls_files["key"])
    site.server.socket = server_context.wrap_socket(site.server.socket, server_side=True)
    site.scheme = "https"
    site.server.handle_error = lambda *args: None  # a refused handshake is expected in one test
    trusting = ssl.create_default_context(cafile=str(tls_files["ca"]))
    monkeypatch.setattr(httpx, "create_ssl_context", lambda **kwargs: trusting)
    yield site.start()
    site.close()


@pytest.mark.integration
def test_https_is_verified_against_the_host_name_while_connecting_to_the_checked_address(monkeypatch, tls_news: Site):
    fake_dns(monkeypatch, {"news.test": lambda: ["127.0.0.2"], "other.test": lambda: ["127.0.0.2"]})
    html, _ = fetch_page(f"https://news.test:{tls_news.port}/page", policy=SITE_ONLY)
    assert "forty minutes" in html
    assert tls_news.hosts == [f"news.test:{tls_news.port}"]
    # The same address under a name the certificate does not carry fails verification.
    message = fetch_error(f"https://other.test:{tls_news.port}/page")
    assert message.startswith("could not connect: ") and "certificate" in message.lower()
    assert len(tls_news.paths) == 1


# --- one total deadline --------------------------------------------------------------------------


def timed_error(url: str, policy: FetchPolicy) -> tuple[str, float]:
    start = time.monotonic()
    message = fetch_error(url, policy)
    return message, time.monotonic() - start


@pytest.mark.parametrize("path", ["/never", "/drip", "/drip-headers"])
@pytest.mark.integration
def test_a_slow_server_fails_at_the_deadline(news: Site, path):
    policy = FetchPolicy(timeout=1.0, allowed_networks=("127.0.0.2/32",))
    message, seconds = timed_error(news.url(path), policy)
    assert message == "timed out after 1s (the limit set by ARTICLEQA_FETCH_TIMEOUT)"
    assert 0.9 <= seconds < 1.8, seconds


def test_a_resolver_that_hangs_fails_at_the_deadline(monkeypatch):
    fake_dns(monkeypatch, {"slow.test": lambda: time.sleep(3) or ["127.0.0.2"]})
    message, seconds = timed_error("http://slow.test/", FetchPolicy(timeout=0.5, allowed_networks=("127.0.0.2/32",)))
    assert message == "timed out after 0.5s (the limit set by ARTICLEQA_FETCH_TIMEOUT)"
    assert seconds < 1.3, seconds


# --- the size cap ----------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_gzip_bomb_fails_at_the_limit_without_inflating(news: Site):
    policy = FetchPolicy(max_bytes=LIMIT, allowed_networks=("127.0.0.2/32",))
    tracemalloc.start()
    try:
        message = fetch_error(news.url("/bomb"), policy)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message == f"page (decompressed) is over the limit of {LIMIT} bytes (ARTICLEQA_MAX_INPUT_MB)"
    assert peak < 16 * 1024 * 1024, f"{peak} bytes allocated for a {LIMIT}-byte limit"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/big-declared", f"page is 2000000 bytes, over the limit of {LIMIT} (ARTICLEQA_MAX_INPUT_MB)"),
        ("/big-undeclared", f"page is over the limit of {LIMIT} bytes (ARTICLEQA_MAX_INPUT_MB)"),
        ("/double-gzip", "unsupported content encoding 'gzip, gzip' (accepted: gzip, deflate)"),
        ("/brotli", "unsupported content encoding 'br' (accepted: gzip, deflate)"),
    ],
)
@pytest.mark.integration
def test_pages_over_the_limit_or_in_unbounded_encodings_fail(news: Site, path, expected):
    assert fetch_error(news.url(path), FetchPolicy(max_bytes=LIMIT, allowed_networks=("127.0.0.2/32",))) == expected


# --- address classification ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2001:4860:4860::8888", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),  # NAT64 of 8.8.8.8: public
        ("127.0.0.1", "a loopback address"),
        ("127.255.255.254", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.0.10", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("64:ff9b::a00:1", "a private address"),  # NAT64 of 10.0.0.1
        ("2002:a00:1::1", "a private address"),  # 6to4 of 10.0.0.1
        ("::ffff:10.0.0.1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("224.0.1.1", "a multicast address"),  # ipaddress calls this one global
        ("ff02::1", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
        ("255.255.255.255", "a reserved address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("fec0::1", "a site-local address"),
    ],
)
def test_address_kind(address, kind):
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_embedded_ipv4():
    assert embedded_ipv4(ipaddress.ip_address("::ffff:127.0.0.1")) == ipaddress.ip_address("127.0.0.1")
    assert embedded_ipv4(ipaddress.ip_address("64:ff9b::a00:1")) == ipaddress.ip_address("10.0.0.1")
    assert embedded_ipv4(ipaddress.ip_address("2002:a00:1::1")) == ipaddress.ip_address("10.0.0.1")
    assert embedded_ipv4(ipaddress.ip_address("2001:db8::1")) is None
    assert embedded_ipv4(ipaddress.ip_address("10.0.0.1")) is None


def test_refusal_honours_allow_private_and_allowed_networks():
    ip = ipaddress.ip_address
    intranet = FetchPolicy(allowed_networks=("10.1.0.0/16", "fd00:1::/32"))
    assert refusal(ip("10.1.200.3"), intranet) is None
    assert refusal(ip("::ffff:10.1.200.3"), intranet) is None  # the same host, IPv4-mapped
    assert refusal(ip("fd00:1::5"), intranet) is None
    assert refusal(ip("10.2.0.1"), intranet) == "a private address"
    assert refusal(ip("127.0.0.1"), intranet) == "a loopback address"
    assert refusal(ip("8.8.8.8"), FetchPolicy()) is None
    anything = FetchPolicy(allow_private=True)
    assert all(refusal(ip(a), anything) is None for a in ("127.0.0.1", "10.0.0.1", "169.254.169.254", "::1"))


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "intranet", "", "300.1.1.1/8"])
def test_a_bad_allowed_network_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"invalid network .* in ARTICLEQA_ALLOWED_NETWORKS: expected a CIDR block"):
        FetchPolicy(allowed_networks=(bad,))


def test_policies_compare_by_their_settings():
    assert FetchPolicy(allowed_networks=("10.0.0.0/8",)) == FetchPolicy(allowed_networks=("10.0.0.0/8",))
    assert FetchPolicy(allowed_networks=("10.0.0.0/8",)).networks == (ipaddress.ip_network("10.0.0.0/8"),)
    with pytest.raises(ValueError, match="more than 0 seconds"):
        FetchPolicy(timeout=0)
