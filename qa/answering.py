"""The answerer interface: what `ArticleQA` asks of whatever turns passages into an answer.

Two answerers implement it: the offline `qa.answerer.ExtractiveAnswerer` and the LLM answerer
`qa.llm.LLMAnswerer` (which keeps an extractive answerer underneath as its fallback).
`ArticleQA` only ever talks to this interface:

    vectors = answerer.question_vectors(question)    # once per question; row 0 also retrieves
    condensed = answerer.condense(question, turns)   # follow-ups, before retrieval: a `Condensed`
    answer = answerer.answer(AnswerContext(question, passages, question_vectors=vectors, ...))
    for event in answerer.stream(context): ...        # "delta" events, then one "answer"
    answerer.llm                                     # the chat model's spec, or None (extractive)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from articleqa.qa.models import Answer, Passage

if TYPE_CHECKING:
    import numpy as np

    from articleqa.qa.conversation import Turn

__all__ = ["AnswerContext", "Answerer", "Condensed", "StreamEvent"]


@dataclass(frozen=True)
class AnswerContext:
    """Everything an answerer gets for one question.

    Attributes:
        question: The user's question, as asked (`ArticleQA` has validated it and normalised
            its whitespace). Sentences are scored against it, not against the conversation,
            or a follow-up would be answered with the previous answer again.
        passages: The retrieved passages, best first; an LLM numbers them [1].. in this order.
        retrieval_query: The query the passages were retrieved with (the question, or the
            question condensed with the conversation); echoed in the answer.
        question_vectors: The answerer's own `question_vectors(question)`, computed once per
            question before retrieval (row 0 was the retrieval's query vector): the question
            is not encoded again. None: the answerer encodes it if it needs it.
        standalone: A follow-up rewritten as a standalone question by the answerer's
            `condense` (the LLM answers this instead of the bare follow-up).
        today: The day the question is asked (default: today).
        unavailable: The answerer's model already failed for this question (while
            condensing), with this reason: do not call it again, fall back at once.
        focus_articles: The articles a follow-up that leans on the conversation is about
            (`qa.conversation.conversation_articles`): the extractive answerer answers from
            their passages first, and from all passages only when those do not answer.
    """

    question: str
    passages: Sequence[Passage]
    retrieval_query: str | None = None
    question_vectors: np.ndarray | None = None
    standalone: str | None = None
    today: date | None = None
    unavailable: str | None = None
    focus_articles: tuple[str, ...] = ()


@dataclass(frozen=True)
class Condensed:
    """What `Answerer.condense` made of a follow-up question.

    `Condensed()` (all empty): the answerer does not condense follow-ups (the caller's
    heuristic, `qa.conversation.condense_query`, does).

    Attributes:
        standalone: The follow-up rewritten as a standalone question.
        failure: Why it was not rewritten, for a note; None when it was, or was not tried.
        unavailable: The failure is the model itself (unreachable, no API key, too slow), and
            `failure` is the reason: the answer then falls back at once instead of calling it
            again (`AnswerContext.unavailable`). False: the model replied, but its reply was
            unusable.
    """

    standalone: str | None = None
    failure: str | None = None
    unavailable: bool = False


@dataclass(frozen=True)
class StreamEvent:
    """One step of a streamed answer: `delta` text as it is produced, then the final answer.

    `kind` is "passages" (retrieval done: `passages` set; only `ArticleQA.stream` emits it),
    "delta" (`text` to append), or "answer" (`answer` set; its citations are final).
    """

    kind: str
    text: str = ""
    passages: tuple[Passage, ...] = ()
    answer: Answer | None = None


@runtime_checkable
class Answerer(Protocol):
    """Turns an `AnswerContext` into an `Answer`, at once or as a stream of events."""

    @property
    def llm(self) -> str | None:
        """The chat model that generates the answers, as its spec ("openai:gpt-4o-mini"), or
        None when the answerer generates none (the extractive one; a plain class attribute
        `llm = None` declares that). Callers print a streamed answer token by token only
        when it is set."""
        ...

    def question_vectors(self, question: str) -> np.ndarray | None:
        """The question's unit vector (row 0, which retrieval uses too) and any further rows
        the answerer scores with, from one encode; None when it needs none (retrieval then
        embeds the question itself)."""
        ...

    def condense(self, question: str, history: Sequence[Turn]) -> Condensed:
        """A follow-up rewritten as a standalone question, or why it was not (`Condensed`)."""
        ...

    def answer(self, context: AnswerContext) -> Answer:
        """The answer to `context.question` from `context.passages` (or an abstention)."""
        ...

    def stream(self, context: AnswerContext) -> Iterator[StreamEvent]:
        """The answer as events: "delta" text as it is produced (zero or more), then exactly
        one "answer" event (last), whose text may differ from the deltas (a note says so)."""
        ...
