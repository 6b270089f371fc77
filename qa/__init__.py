"""Question answering over the indexed articles: retrieval, cited answers, the Python API.

from qa import ArticleQA
with ArticleQA.open(".articleqa") as qa:
    print(qa.ask("Who called the meeting a waste of time?").text)
"""

from qa.answerer import NO_ANSWER, ExtractiveAnswerer
from qa.answering import AnswerContext, Answerer
from qa.api import ArticleQA, EmptyIndexError, EmptyQuestionError, LLMConfigError, QAError, StreamEvent
from qa.conversation import Turn
from qa.models import Answer, Citation, Passage
from qa.options import QAOptions
from qa.retrieval import FilterError, Filters, HybridRetriever, parse_filters

__all__ = [
    "NO_ANSWER",
    "Answer",
    "AnswerContext",
    "Answerer",
    "ArticleQA",
    "Citation",
    "EmptyIndexError",
    "EmptyQuestionError",
    "ExtractiveAnswerer",
    "FilterError",
    "Filters",
    "HybridRetriever",
    "LLMConfigError",
    "Passage",
    "QAError",
    "QAOptions",
    "StreamEvent",
    "Turn",
    "parse_filters",
]
