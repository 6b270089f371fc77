"""`ArticleQA`: the Python API. Open an index, ask questions, get typed, cited answers.

    from qa import ArticleQA

    with ArticleQA.open(".articleqa") as qa:
        answer = qa.ask("Who called the meeting a waste of time?")
        print(answer.text)                       # the quoted sentence with a [1] marker
        for c in answer.citations:
            print(c.n, c.title, c.quote, c.start, c.end)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from index import DEFAULT_COLLECTION, DEFAULT_MODEL, IndexStore, open_index
from index.store import Manifest
from qa.answerer import ExtractiveAnswerer
from qa.conversation import Turn, as_turns, condense_query
from qa.models import Answer, Passage
from qa.retrieval import Filters, HybridRetriever, RetrievalResult


class QAError(RuntimeError):
    """A question or index the system cannot work with; the message says what to do."""


class EmptyQuestionError(QAError, ValueError):
    pass


class EmptyIndexError(QAError):
    pass


@dataclass(frozen=True)
class StreamEvent:
    """One step of a streamed answer: `delta` text as it is produced, then the final answer.

    `kind` is "passages" (retrieval done: `passages` set), "delta" (`text` to append), or
    "answer" (`answer` set; its citations are final).
    """

    kind: str
    text: str = ""
    passages: tuple[Passage, ...] = ()
    answer: Answer | None = None


class ArticleQA:
    """Question answering over one index folder.

    Args:
        store: The opened index.
        k: Passages retrieved per question.
        answerer: Turns passages into an answer (default: the offline extractive answerer).
    """

    def __init__(self, store: IndexStore, *, k: int = 6, answerer: Any | None = None):
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.store = store
        self.retriever = HybridRetriever(store=store, k=k)
        self.answerer = answerer or ExtractiveAnswerer(store.embeddings)

    @classmethod
    def open(
        cls,
        index_dir: str | Path = ".articleqa",
        *,
        embedding_model: str = DEFAULT_MODEL,
        chroma_url: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        k: int = 6,
        answer_threshold: float | None = None,
    ) -> ArticleQA:
        """Open an existing index folder for questions.

        Raises:
            EmptyIndexError: There is no index at `index_dir`, or it holds no articles.
            index.IndexMismatchError: It was built with another embedding model.
        """
        path = Path(index_dir).expanduser()
        if Manifest.read(path / "manifest.json") is None:
            raise EmptyIndexError(
                f"no index in {path}. Build one first: articleqa index PATH... --index-dir {path}"
            )
        store = open_index(
            path, embedding_model=embedding_model, chroma_url=chroma_url, collection=collection
        )
        if store.articles.count() == 0:
            store.close()
            raise EmptyIndexError(
                f"the index in {path} holds no articles. Add some: articleqa index PATH... "
                f"--index-dir {path}"
            )
        answerer = None
        if answer_threshold is not None:
            answerer = ExtractiveAnswerer(store.embeddings, threshold=answer_threshold)
        return cls(store, k=k, answerer=answerer)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> ArticleQA:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def retrieve(
        self,
        question: str,
        history: Iterable[Any] | None = None,
        filters: Filters | None = None,
        *,
        k: int | None = None,
        today: date | None = None,
    ) -> RetrievalResult:
        """The passages `ask` would answer from (for inspection and evaluation)."""
        question = _clean(question)
        turns = as_turns(history)
        condensed = condense_query(question, turns)
        follow_up = condensed != question
        return self.retriever.retrieve(
            question,
            k=k,
            filters=filters,
            today=today,
            context_query=condensed if follow_up else None,
            prefer_articles=turns[-1].article_ids if follow_up else (),
        )

    def ask(
        self,
        question: str,
        history: Iterable[Any] | None = None,
        filters: Filters | None = None,
        *,
        k: int | None = None,
        today: date | None = None,
    ) -> Answer:
        """Answer `question` from the indexed articles, or say plainly that they do not.

        Args:
            question: The question; must not be blank.
            history: Earlier turns of the conversation (`Turn`s, (question, answer) pairs or
                role/content messages), most recent last; follow-ups are resolved with them.
            filters: Only use articles of these sources / this publication date range.
            k: Passages to retrieve (default: the instance's `k`).
            today: The day the question is asked, for "yesterday", "last week" (default: today).

        Returns:
            An `Answer`: quoted sentences with [n] markers and their `Citation`s, or
            `grounded=False` with the closest passages as `related`.

        Raises:
            EmptyQuestionError: The question is blank.
        """
        result = self.retrieve(question, history, filters, k=k, today=today)
        answer = self.answer_from(question, result)
        if result.window:
            answer.notes.append(
                f"preferred articles published {result.window.start} to {result.window.end} "
                f"({result.window.cue!r})"
            )
        return answer

    def stream(
        self,
        question: str,
        history: Iterable[Any] | None = None,
        filters: Filters | None = None,
        *,
        k: int | None = None,
        today: date | None = None,
    ) -> Iterator[StreamEvent]:
        """Like `ask`, as events: the passages, the answer text in pieces, the final answer.

        The extractive answerer's text is known at once; it is streamed a sentence at a time
        so every interface handles streaming the same way the LLM answerer needs.
        """
        result = self.retrieve(question, history, filters, k=k, today=today)
        yield StreamEvent("passages", passages=tuple(result.passages))
        answer = self.answer_from(question, result)
        for piece in re.findall(r"\S.*?(?:\[\d+\]|$)\s*", answer.text):
            yield StreamEvent("delta", text=piece)
        yield StreamEvent("answer", answer=answer)

    def answer_from(self, question: str, result: RetrievalResult) -> Answer:
        """The answer to `question` from an earlier `retrieve()` result (for evaluation)."""
        # The conversation only widens retrieval; sentences are scored against the question
        # itself, or a follow-up would be answered with the previous answer again.
        answer = self.answerer.answer(_clean(question), result.passages)
        answer.retrieval_query = result.query
        return answer

    def turn(self, question: str, answer: Answer) -> Turn:
        """The `Turn` to append to a history after `answer`."""
        return Turn(
            question=question,
            answer=answer.text,
            article_ids=[c.article_id for c in answer.citations],
        )


def _clean(question: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise EmptyQuestionError("the question is empty; ask something, e.g. \"Who won the election?\"")
    return " ".join(question.split())
