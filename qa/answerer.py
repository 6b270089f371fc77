"""The offline extractive answerer: quote the retrieved sentences that answer the question.

No generator is involved, so the answer is always text the articles actually contain. Every
sentence of every retrieved passage is a candidate; the learned scorer (`qa.scorer`, trained by
`training/train_answer_scorer.py`) gives each a calibrated probability that it answers the
question, and the question a probability that the retrieved articles answer it at all.

- Below the answerability threshold (chosen on the fitting data for at most 10% false
  abstention) the answerer says plainly that the articles do not answer the question, and
  offers the closest passages as `related`.
- Otherwise it quotes the best sentence; the best sentence of each source the question names
  ("according to TechCrunch ... and The Verge"); and the best sentence of any other article
  that scores above the learned multi-article threshold: one sentence per article, each with
  its own [n].
- A yes/no question ("Did both reports ...") gets those sentences with their sources and dates,
  and a line saying the yes/no is left to the reader.
- When the question asks for a name, number or date, the short answer inside the best quote
  is shown first, and its offsets are kept on the citation: `qa.spans` lists the sentence's
  candidate spans and the learned span ranker (`qa.span_ranker`) picks one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from articleqa.qa.answering import AnswerContext, Condensed, StreamEvent
from articleqa.qa.features import FEATURES, DocumentFrequencySource, SentenceVectorSource
from articleqa.qa.metadata import SourceCatalog
from articleqa.qa.models import Answer, Citation, Passage
from articleqa.qa.scorer import AnswerScorer, QuestionScores
from articleqa.qa.span_ranker import SpanRanker, best_span
from articleqa.qa.spans import candidates, span_form
from articleqa.qa.text import content_terms

if TYPE_CHECKING:
    from articleqa.qa.conversation import Turn

NO_ANSWER = "The indexed articles do not answer this question."
YES_NO_LEAD = "The articles do not say yes or no outright; here is what each report says:"
YES_NO_NOTE = "a yes/no question: the extractive answer shows the relevant reports with their dates and leaves the yes/no to the reader"
# At most this many articles are quoted in one answer (one sentence each, plus at most one
# more sentence from the best article).
MAX_ARTICLES = 4
# A second sentence from the best article is not added when it embeds this close to the
# first (cosine of the two sentence vectors): it would say the same thing again.
NEAR_DUPLICATE_COSINE = 0.9


@functools.cache
def shipped_span_ranker() -> SpanRanker:
    """The span ranker in the package (`qa/weights/span_ranker.json`), read once per process."""
    return SpanRanker.load()


class _Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class ScoredSentence:
    """A candidate sentence with its probability of answering the question.

    `start`/`end` are offsets in the article text (`passage.start` + offset in the passage),
    and `text == passage.text[start - passage.start : end - passage.start]`.
    """

    passage: Passage
    start: int
    end: int
    text: str
    score: float
    features: dict[str, float] = field(default_factory=dict)
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)


class ExtractiveAnswerer:
    """Answers by quoting the sentences the learned scorer ranks best, or abstains.

    A `qa.answering.Answerer`: its answer is known at once, so `stream` gives it as one
    "delta" event and the "answer" event.

    Args:
        embeddings: Anything with `encode(list[str]) -> np.ndarray` of unit vectors (the
            shared `index.embeddings.get_embeddings()` model).
        max_sentences: At most this many quoted sentences (default MAX_ARTICLES).
        threshold: Abstain when P(the articles answer the question) is below this
            (default: the calibrated threshold shipped with the weights).
        related_k: How many related passages to offer when abstaining.
        sentence_vectors: Where stored sentence vectors come from (None: encode every
            candidate sentence per question: about 300 ms instead of 15 on 2 cores).
        catalog: Returns the indexed sources (to find the ones a question names); None: the
            question's source names are not recognised.
        weights: Trained scorer weights (default: the ones shipped in the package).
        document_frequencies: Corpus statistics of terms (the index's; None: the candidate
            sentences stand in for the corpus).
        span_ranker: Picks the short answer among a sentence's candidate spans (None: the one
            shipped in the package; False: the extractor's first candidate, no extra encode).
    """

    llm: str | None = None  # generates nothing: the answer is quoted sentences, complete at once

    def __init__(
        self,
        embeddings: _Encoder,
        *,
        max_sentences: int = MAX_ARTICLES,
        threshold: float | None = None,
        related_k: int = 3,
        sentence_vectors: SentenceVectorSource | None = None,
        catalog: Callable[[], SourceCatalog] | None = None,
        weights: dict[str, Any] | None = None,
        document_frequencies: DocumentFrequencySource | None = None,
        span_ranker: SpanRanker | Literal[False] | None = None,
    ):
        if max_sentences < 1:
            raise ValueError(f"max_sentences must be at least 1, got {max_sentences}")
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold is a probability between 0 and 1, got {threshold}")
        self.embeddings = embeddings
        self.scorer = AnswerScorer(embeddings, sentence_vectors, weights, document_frequencies)
        self.max_sentences = max_sentences
        self.threshold = self.scorer.threshold if threshold is None else threshold
        self.related_k = related_k
        self.catalog = catalog
        self.span_ranker: SpanRanker | None = (
            shipped_span_ranker() if span_ranker is None else None if span_ranker is False else span_ranker
        )

    # ---- scoring ---------------------------------------------------------------------------

    def question_vectors(self, question: str) -> np.ndarray:
        """The question's vector (row 0, usable for retrieval) and its clauses', in one encode."""
        return self.scorer.question_vectors(question)

    def score(self, question: str, passages: Sequence[Passage], encoded: np.ndarray | None = None) -> QuestionScores:
        """Every candidate sentence of `passages` with its probability of answering `question`."""
        return self.scorer.featurise(question, passages, self.catalog() if self.catalog else None, encoded)

    def score_sentences(self, question: str, passages: list[Passage], **_: Any) -> list[ScoredSentence]:
        """Scored sentences, best first (ties broken by retrieval rank, then text order)."""
        return _ranked(self.score(question, passages))

    # ---- answering -------------------------------------------------------------------------

    def condense(self, question: str, history: Sequence[Turn]) -> Condensed:
        """`Condensed()`: no model to rewrite follow-ups; `qa.conversation.condense_query`'s
        heuristic widens retrieval instead."""
        return Condensed()

    def stream(self, context: AnswerContext) -> Iterator[StreamEvent]:
        """The whole answer text as one "delta" event (it is complete at once), then the answer."""
        answer = self.answer(context)
        yield StreamEvent("delta", text=answer.text)
        yield StreamEvent("answer", answer=answer)

    def answer(self, context: AnswerContext) -> Answer:
        """Answer `context.question` from `context.passages`, or abstain (scored with
        `context.question_vectors` when given, else the question is encoded here). With
        `context.focus_articles`, from those articles' passages first (`AnswerContext`).

        Returns:
            A grounded `Answer` quoting sentences with `[n]` markers and matching citations
            (the short answer first when the question asks for a name, number or date), or an
            ungrounded one with `NO_ANSWER`, no citations and up to `related_k` related passages.
        """
        question, passages = context.question, list(context.passages)
        query = context.retrieval_query or question
        focus = [p for p in passages if p.article_id in context.focus_articles]
        if not focus or len(focus) == len(passages):
            return self._answer(question, passages, query, context.question_vectors)
        # A follow-up that leans on the conversation ("What did he say about troops?") is about
        # the articles the previous answer cited: answer from them when they answer it, else
        # from every passage; when neither does, their passages are the closest ones to show.
        within = self._answer(question, focus, query, context.question_vectors)
        if within.grounded:
            return within
        wider = self._answer(question, passages, query, context.question_vectors)
        if not wider.grounded:
            seen = {(c.article_id, c.passage_start) for c in within.related}
            merged = within.related + [c for c in wider.related if (c.article_id, c.passage_start) not in seen]
            wider.related = [c.model_copy(update={"n": i}) for i, c in enumerate(merged[: self.related_k], 1)]
        return wider

    def _answer(self, question: str, passages: list[Passage], query: str, vectors: np.ndarray | None) -> Answer:
        scores = self.score(question, passages, vectors)
        ranked = _ranked(scores)
        if not ranked:
            return self._abstain(question, query, [], 0.0, ["no passages retrieved"])
        confidence = self.scorer.answerability(scores)
        if confidence < self.threshold:
            if scores.missing_names:
                names = ", ".join(repr(m) for m in scores.missing_names)
                reason = f"the retrieved articles do not mention {names}"
            else:
                reason = "no retrieved sentence answers the question with enough confidence"
            return self._abstain(
                question,
                query,
                ranked,
                confidence,
                [f"{reason} (P(answerable) {confidence:.2f} < {self.threshold:.2f})"],
            )
        # Best first: [1] is the sentence most likely to answer, the rest support or complete it.
        chosen = sorted(self._select(ranked, scores.question.sources), key=lambda s: -s.score)
        multi_article = len({s.passage.article_id for s in chosen}) > 1
        best = chosen[0]
        span = best_span(
            self.span_ranker,
            self.embeddings,
            candidates(question, span_form(scores.question.form, self._span_kinds(scores)), best.text),
            best.text,
            scores.question_vector,
            scores.opening_vector,
        )
        citations = []
        for i, s in enumerate(chosen):
            c = _citation(i + 1, s)
            if span is not None and s is best:
                c.answer_start, c.answer_end = s.start + span.start, s.start + span.end
            citations.append(c)
        dated = multi_article or scores.question.yes_no
        quotes = " ".join(f"{_dateline(s) if dated else ''}{s.text} [{c.n}]" for s, c in zip(chosen, citations))
        notes: list[str] = []
        if scores.question.yes_no:
            text = f"{YES_NO_LEAD} {quotes}"
            notes.append(YES_NO_NOTE)
        elif span is not None:
            text = f"{span.text}: {quotes}"
        else:
            text = quotes
        return Answer(
            question=question,
            text=text,
            grounded=True,
            citations=citations,
            short_answer=span.text if span else None,
            confidence=confidence,
            score=best.score,
            retrieval_query=query,
            answerer="extractive",
            notes=notes,
        )

    def _span_kinds(self, scores: QuestionScores) -> np.ndarray | None:
        """P(name, count, date, other) for choosing the short answer's kind (`qa.spans.span_form`):
        the span ranker's own model when it has one, else the scorer's answer types."""
        if self.span_ranker is not None:
            kinds = self.span_ranker.kind_probabilities(scores.question_vector, scores.opening_vector)
            if kinds is not None:
                return kinds
        return scores.answer_types

    def _abstain(
        self, question: str, query: str, ranked: list[ScoredSentence], confidence: float, notes: list[str]
    ) -> Answer:
        return Answer(
            question=question,
            text=NO_ANSWER,
            grounded=False,
            related=self._related(ranked),
            confidence=confidence,
            score=ranked[0].score if ranked else None,
            retrieval_query=query,
            answerer="extractive",
            notes=notes,
        )

    def _select(self, ranked: list[ScoredSentence], named_sources: Sequence[str]) -> list[ScoredSentence]:
        """The best sentence; the best of each named source; the best of each other article
        above the multi-article threshold; a second sentence of the best article if it scores
        above that threshold too and says something new. At most `max_sentences`."""
        best = ranked[0]
        chosen = [best]
        articles = {best.passage.article_id}
        for source in named_sources:
            if best.passage.source == source:
                continue
            of_source = next((s for s in ranked if s.passage.source == source), None)
            if of_source is not None and of_source.passage.article_id not in articles:
                chosen.append(of_source)
                articles.add(of_source.passage.article_id)
        tau = self.scorer.multi_article_threshold
        for s in ranked[1:]:
            if s.score < tau:
                break
            if s.passage.article_id not in articles:
                chosen.append(s)
                articles.add(s.passage.article_id)
            elif (
                s.passage.article_id == best.passage.article_id
                and sum(c.passage.article_id == best.passage.article_id for c in chosen) == 1
                and not _near_duplicate(s, best)
            ):
                chosen.append(s)
        return chosen[: self.max_sentences]

    def _related(self, ranked: list[ScoredSentence]) -> list[Citation]:
        """Citations for the best sentence of each of the top `related_k` distinct passages."""
        related: list[Citation] = []
        seen: set[str] = set()
        for s in ranked:
            if len(related) >= self.related_k:
                break
            if s.passage.chunk_id in seen:
                continue
            seen.add(s.passage.chunk_id)
            related.append(_citation(len(related) + 1, s))
        return related


def _ranked(scores: QuestionScores) -> list[ScoredSentence]:
    return [
        ScoredSentence(
            c.passage,
            c.start,
            c.end,
            c.text,
            float(scores.proba[j]),
            dict(zip(FEATURES, map(float, scores.features[j]))),
            scores.vectors[j],
        )
        for j in scores.order()
        for c in (scores.candidates[j],)
    ]


def _near_duplicate(a: ScoredSentence, b: ScoredSentence) -> bool:
    if a.vector is not None and b.vector is not None and float(a.vector @ b.vector) >= NEAR_DUPLICATE_COSINE:
        return True
    return set(content_terms(a.text)) <= set(content_terms(b.text))


def _dateline(s: ScoredSentence) -> str:
    parts = [p for p in (s.passage.source, s.passage.published_at and s.passage.published_at.isoformat()) if p]
    return f"({', '.join(parts)}) " if parts else ""


def _citation(n: int, s: ScoredSentence) -> Citation:
    return Citation.of(n, s.passage, s.start - s.passage.start, s.end - s.passage.start, s.score)
