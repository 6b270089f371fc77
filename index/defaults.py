"""The `index` defaults that the settings and the command line need before anything runs.

Nothing but constants, and no imports: the `articleqa` command reads them to build its options
and help text, and `articleqa --help` must not load Chroma or a model library to do so. Each
is re-exported where it is used (`index.folder`, `index.chunking`), so it is declared once.
"""

from __future__ import annotations

DEFAULT_INDEX_DIR = ".articleqa"  # the index folder when none is configured

# The chunking defaults of every index (settings, `open_index`, `IndexStore`, the web app).
DEFAULT_CHUNK_SIZE = 800  # target characters per chunk
DEFAULT_CHUNK_OVERLAP = 150  # characters of whole sentences shared by neighbouring chunks

# Following news feeds (`articleqa watch`, `articleqa serve --watch`, `index.watch`).
DEFAULT_WATCH_EVERY = "15m"  # time between two polls of the subscriptions
DEFAULT_HOST_DELAY = 1.0  # seconds between two requests to the same host
