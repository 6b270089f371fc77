"""Question answering over the indexed articles: retrieval, cited answers, the Python API.

from articleqa.qa import ArticleQA
with ArticleQA.open(".articleqa") as qa:
    print(qa.ask("Who called the meeting a waste of time?").text)

The names below are imported from their modules on first use (PEP 562 `__getattr__`), so that
importing this package, or a light module of it such as `qa.defaults`, loads no numpy,
LangChain or model library (`articleqa --help` imports them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from articleqa.index.lazy import lazy_exports

if TYPE_CHECKING:  # what type checkers see; at run time `__getattr__` imports each on first use
    from articleqa.qa.answerer import NO_ANSWER, ExtractiveAnswerer
    from articleqa.qa.answering import AnswerContext, Answerer, Condensed
    from articleqa.qa.api import ArticleQA, EmptyIndexError, EmptyQuestionError, LLMConfigError, QAError, StreamEvent
    from articleqa.qa.conversation import Turn
    from articleqa.qa.models import Answer, Citation, Passage
    from articleqa.qa.options import QAOptions
    from articleqa.qa.retrieval import FilterError, Filters, HybridSearch, parse_filters
    from articleqa.qa.retriever import HybridRetriever

__all__ = [
    "NO_ANSWER",
    "Answer",
    "AnswerContext",
    "Answerer",
    "ArticleQA",
    "Citation",
    "Condensed",
    "EmptyIndexError",
    "EmptyQuestionError",
    "ExtractiveAnswerer",
    "FilterError",
    "Filters",
    "HybridRetriever",
    "HybridSearch",
    "LLMConfigError",
    "Passage",
    "QAError",
    "QAOptions",
    "StreamEvent",
    "Turn",
    "parse_filters",
]

# The module (of this package) each name of `__all__` is imported from.
_SOURCES: dict[str, str] = {
    "NO_ANSWER": "answerer",
    "Answer": "models",
    "AnswerContext": "answering",
    "Answerer": "answering",
    "ArticleQA": "api",
    "Citation": "models",
    "Condensed": "answering",
    "EmptyIndexError": "api",
    "EmptyQuestionError": "api",
    "ExtractiveAnswerer": "answerer",
    "FilterError": "retrieval",
    "Filters": "retrieval",
    "HybridRetriever": "retriever",
    "HybridSearch": "retrieval",
    "LLMConfigError": "api",
    "Passage": "models",
    "QAError": "api",
    "QAOptions": "options",
    "StreamEvent": "api",
    "Turn": "conversation",
    "parse_filters": "retrieval",
}


__getattr__, __dir__ = lazy_exports(__name__, _SOURCES, __all__)
