"""Requests to a Chroma server that survive a short outage, and fail with a clear error after that.

With a Chroma server on another machine, a restart, a deploy or a dropped connection fails a
request in transport (connection refused, reset, timed out). Such a request is tried again after
growing pauses: an indexer's write (`index.vectorstore.HybridStore`: the lexical index first, then
Chroma) for 7.5 s in all (`WRITE_PAUSES_S`, about what a `chroma run` restart takes), a
question's read for 1.75 s (`READ_PAUSES_S`: someone is waiting). Writes are upserts and deletes
by id, so one the server did apply before the connection broke is harmless to repeat. When the
server is still gone, `ChromaServerError` names it. Errors the server answers with (a bad
request) are not retried: trying again would not change them. Embedded Chroma has no transport,
so nothing here applies to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from articleqa.index.folder import IndexStoreError

T = TypeVar("T")
# Pauses before each new try of a Chroma server request that failed in transport.
WRITE_PAUSES_S = (0.5, 1.0, 2.0, 4.0)
READ_PAUSES_S = (0.25, 0.5, 1.0, 2.0)
log = logging.getLogger(__name__)


class ChromaServerError(IndexStoreError):
    """A request to the Chroma server failed in transport on every try."""


def _transport_errors() -> tuple[type[BaseException], ...]:
    import httpx  # chromadb's HTTP client

    return (httpx.TransportError,)


def call_server(action: Callable[[], T], server_url: str | None, what: str, pauses: Sequence[float]) -> T:
    """`action()`, tried again after each of `pauses` while it fails in transport.

    Args:
        action: One request (a write must be idempotent: an upsert or a delete by ids).
        server_url: The Chroma server's URL, for the messages; None (embedded Chroma): run
            `action` once, as it is.
        what: What the request does ("writing 120 chunks"), for the messages.
        pauses: Seconds to wait before each new try (`WRITE_PAUSES_S`, `READ_PAUSES_S`).

    Raises:
        ChromaServerError: Every try failed in transport.
    """
    if not server_url:
        return action()
    transport = _transport_errors()
    for pause in (*pauses, None):
        try:
            return action()
        except transport as exc:
            if pause is None:
                raise ChromaServerError(
                    f"lost the Chroma server at {server_url} while {what} ({type(exc).__name__}: {exc}), "
                    f"after {len(pauses) + 1} tries in {sum(pauses):.2f} s"
                ) from exc
            log.warning(
                "Chroma server at %s failed while %s (%s); trying again in %.2f s", server_url, what, exc, pause
            )
            time.sleep(pause)
    raise AssertionError("unreachable")
