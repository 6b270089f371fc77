"""Writes to a Chroma server that survive a short outage, and fail with a clear error after that.

An indexer writes each batch to the lexical index, then to Chroma (`index.store.HybridStore`).
With a Chroma server on another machine, a restart, a deploy or a dropped connection fails the
Chroma write in transport (connection refused, reset, timed out). Such a write is tried again
after growing pauses (`RETRY_PAUSES_S`: 7.5 s in all, about what a `chroma run` restart takes);
writes are upserts and deletes by id, so a request the server did apply before the connection
broke is harmless to repeat. When the server is still gone, `ChromaWriteError` names it and
says what to do. Errors the server answers with (a bad request) are not retried: trying again
would not change them. Embedded Chroma has no transport, so nothing here applies to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from articleqa.index.folder import IndexStoreError

T = TypeVar("T")
# Pauses before each new try of a Chroma server write that failed in transport.
RETRY_PAUSES_S = (0.5, 1.0, 2.0, 4.0)
log = logging.getLogger(__name__)


class ChromaWriteError(IndexStoreError):
    """A write to the Chroma server failed in transport on every try."""


def _transport_errors() -> tuple[type[BaseException], ...]:
    import httpx  # chromadb's HTTP client

    return (httpx.TransportError,)


def write_to_server(action: Callable[[], T], server_url: str | None, what: str) -> T:
    """`action()`, tried again after `RETRY_PAUSES_S` while it fails in transport.

    Args:
        action: One idempotent write (an upsert or a delete by ids).
        server_url: The Chroma server's URL, for the messages; None (embedded Chroma): run
            `action` once, as it is.
        what: What the write does ("writing 120 chunks"), for the messages.

    Raises:
        ChromaWriteError: Every try failed in transport.
    """
    if not server_url:
        return action()
    transport = _transport_errors()
    for pause in (*RETRY_PAUSES_S, None):
        try:
            return action()
        except transport as exc:
            if pause is None:
                raise ChromaWriteError(
                    f"lost the Chroma server at {server_url} while {what} ({type(exc).__name__}: {exc}), "
                    f"after {len(RETRY_PAUSES_S) + 1} tries in {sum(RETRY_PAUSES_S):.1f} s"
                ) from exc
            log.warning(
                "Chroma server at %s failed while %s (%s); trying again in %.1f s", server_url, what, exc, pause
            )
            time.sleep(pause)
    raise AssertionError("unreachable")
