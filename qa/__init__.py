"""Question answering over the indexed articles: retrieval, cited answers, the Python API.

from articleqa.qa import ArticleQA
with ArticleQA.open(".articleqa") as qa:
    print(qa.ask("Who called the meeting a waste of time?").text)
"""

from articleqa.qa.answerer import NO_ANSWER, ExtractiveAnswerer
from articleqa.qa.answering import AnswerContext, Answerer
from articleqa.qa.api import ArticleQA, EmptyIndexError, EmptyQuestionError, LLMConfigError, QAError, StreamEvent
from articleqa.qa.conversation import Turn
from articleqa.qa.models import Answer, Citation, Passage
from articleqa.qa.options import QAOptions
from articleqa.qa.retrieval import FilterError, Filters, HybridRetriever, parse_filters

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
