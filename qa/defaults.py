"""The `qa` defaults that the settings and the command line need before anything runs.

Nothing but constants, and no imports beyond `typing`: the `articleqa` command reads them to
build its options and help text, and `articleqa --help` must not load numpy, LangChain or a
model library to do so. Each is re-exported where it is used (`qa.retrieval`, `qa.llm`), so it
is declared once.
"""

from __future__ import annotations

from typing import Literal

# Passages retrieved per question: the default of the settings, `ArticleQA` and the web app.
# 8 was chosen on the fitting data (training/README.md: 6, 8 and 10 compared by out-of-fold
# answer accuracy and on our own held-out questions); the answer scorer is trained at this k.
DEFAULT_K = 8
RetrievalMode = Literal["hybrid", "dense", "lexical"]
RETRIEVAL_MODES: tuple[str, ...] = ("hybrid", "dense", "lexical")
DEFAULT_RETRIEVAL_MODE: RetrievalMode = "hybrid"

# Seconds allowed for one complete LLM reply; then the extractive answer is shown.
DEFAULT_LLM_TIMEOUT = 60.0
