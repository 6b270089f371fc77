"""Typed, JSON-serialisable results of retrieval and answering."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Passage(BaseModel):
    """A retrieved chunk with its article's metadata and its retrieval scores.

    `text == article.text[start:end]`.
    """

    model_config = ConfigDict(frozen=True)

    chunk_id: str
    article_id: str
    title: str
    source: str | None = None
    url: str | None = None
    published_at: date | None = None
    text: str
    start: int
    end: int
    score: float = Field(0.0, description="Fused retrieval score (higher is better).")
    dense_rank: int | None = None
    lexical_rank: int | None = None


class Citation(BaseModel):
    """A quoted sentence, where it is in its article, and the passage around it.

    `quote == article.text[start:end]` for the article named by `article_id`.
    """

    n: int = Field(ge=1, description="The marker number: [n] in the answer text.")
    article_id: str
    title: str
    source: str | None = None
    url: str | None = None
    published_at: date | None = None
    quote: str
    start: int = Field(ge=0)
    end: int = Field(gt=0)
    passage: str
    passage_start: int = Field(ge=0)
    passage_end: int = Field(gt=0)
    score: float = 0.0
    answer_start: int | None = Field(
        None, description="Article offsets of the short answer inside the quote, if there is one."
    )
    answer_end: int | None = None

    @classmethod
    def of(cls, n: int, passage: Passage, start: int, end: int, score: float | None = None) -> Citation:
        """Cite `passage.text[start:end]` (offsets within the passage) as marker [n].

        The quote is cut from the passage, so `article.text[c.start:c.end] == c.quote` holds
        whenever the passage is an exact slice of its article.
        """
        return cls(
            n=n,
            article_id=passage.article_id,
            title=passage.title,
            source=passage.source,
            url=passage.url,
            published_at=passage.published_at,
            quote=passage.text[start:end],
            start=passage.start + start,
            end=passage.start + end,
            passage=passage.text,
            passage_start=passage.start,
            passage_end=passage.end,
            score=passage.score if score is None else score,
        )


class Answer(BaseModel):
    """The answer to one question.

    When `grounded` is False the articles do not answer the question: `text` says so plainly,
    `citations` is empty and `related` holds the closest passages.
    """

    question: str
    text: str
    grounded: bool
    citations: list[Citation] = Field(default_factory=list)
    short_answer: str | None = Field(
        None, description="The name, number or date the question asks for, cut from a cited quote."
    )
    related: list[Citation] = Field(default_factory=list)
    confidence: float = Field(0.0, description="P(the articles answer the question) (extractive).")
    score: float | None = Field(None, description="P(the best sentence answers the question), extractive.")
    retrieval_query: str = ""
    answerer: Literal["extractive", "llm"] = "extractive"
    notes: list[str] = Field(default_factory=list)
