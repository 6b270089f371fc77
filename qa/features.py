"""Features of (question, candidate sentence in its passage) for the learned answer scorer.

One row of numbers per candidate sentence of the retrieved passages, computed the same way at
training time (`training/train_answer_scorer.py`) and at question time (`qa.scorer`). Nothing
here is weighted by hand: the weights are learned (see `qa.scorer`). The features are generic
signals a reader would use:

- similarity: cosine between the question (and each of its clauses) and the sentence and its
  neighbours (bundled MiniLM; sentence vectors stored at indexing time), relative to the best
  candidate;
- overlap: IDF-weighted share of the question's terms in the sentence, its window, the
  retrieved text of its article, and its article's title (IDF over the candidates, so rare
  names and numbers dominate; and IDF over the whole index, where the index gives it);
- metadata: whether the question names the article's source (`qa.metadata`);
- retrieval: the passage's fused score relative to the best, its dense and BM25 ranks;
- form: length, position in the article, new names / numbers (digits or words) / years not
  in the question, quotation marks, and the question's form (who, when, where, how many,
  what/which, yes/no);
- time: whether the years the question names are the article's year of publication or
  written in its retrieved passages;
- agreement: how many other retrieved articles mention a name of the sentence that the
  question does not (the answer to a multi-source question is often the one name its sources
  share).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from articleqa.index.chunking import split_sentences
from articleqa.index.encoding import SpanVectors
from articleqa.qa.answer_type import new_date
from articleqa.qa.metadata import SourceCatalog
from articleqa.qa.models import Passage
from articleqa.qa.text import TOKEN, capitalised_words, content_terms, has_year, is_count, terms_of, tokens, years

# Fragments shorter than this many words (captions, bylines, headlines) are not candidates
# unless nothing longer exists.
MIN_WORDS = 4
# Question forms, by their first interrogative word (a closed class of English function words).
FORMS = ("who", "when", "where", "quantity", "what", "yes_no", "other")
_AUXILIARIES = frozenset(
    "is are was were do does did has have had can could will would should may might must shall".split()
)
_WH = {"who": "who", "whom": "who", "whose": "who", "when": "when", "where": "where", "which": "what", "what": "what"}
_QUANTITY_AFTER_HOW = frozenset("many much long old far big large high often".split())
# Clauses of a long question: "..., according to X, and ... as reported by Y?"
_CLAUSE_SPLIT = re.compile(r"\s*(?:[,;:]|\band\b|\bwhile\b|\bwhereas\b|\bbut\b)\s*", re.IGNORECASE)
_MIN_CLAUSE_WORDS = 3
_QUOTE = re.compile(r"[\"“”]")

FEATURES: tuple[str, ...] = (
    "cos_question",
    "cos_question_rel",
    "cos_clause_max",
    "cos_clause_rel",
    "cos_prev",
    "cos_next",
    "overlap",
    "overlap_rel",
    "overlap_clause_max",
    "overlap_window",
    "overlap_article",
    "overlap_corpus",
    "overlap_corpus_window",
    "missing_specific",
    "missing_specific_window",
    "overlap_title",
    "source_named",
    "any_source_named",
    "n_sources_named",
    "passage_score_rel",
    "inv_rank",
    "inv_dense_rank",
    "inv_lexical_rank",
    "lead",
    "log_offset",
    "log_words",
    "new_names",
    "shared_names",
    "new_numbers",
    "year",
    "year_agrees",
    "new_date",
    "echo",
    "quote",
    "log_question_words",
    *(f"form_{f}" for f in FORMS),
)

SentenceVectorSource = Callable[[Sequence[str]], dict[str, SpanVectors]]
"""chunk ids -> their stored sentence vectors (e.g. `index.lexical.LexicalIndex.sentence_vectors`)."""
DocumentFrequencySource = Callable[[Sequence[str]], tuple[dict[str, int], int]]
"""terms -> (chunks containing each, chunks in all) (e.g. `LexicalIndex.document_frequencies`)."""


@dataclass(frozen=True)
class Question:
    """A question, analysed once: its form, opening, clauses, terms and the sources it names."""

    text: str
    form: str
    clause_spans: tuple[tuple[int, int], ...]  # offsets of the clauses in `text`; () if one clause
    terms: tuple[str, ...]
    sources: tuple[str, ...]
    opening_span: tuple[int, int] = (0, 0)  # offsets of `opening(text)` in `text`

    @property
    def opening(self) -> str:
        return self.text[self.opening_span[0] : self.opening_span[1]]

    @property
    def clauses(self) -> tuple[str, ...]:
        return tuple(self.text[a:b] for a, b in self.clause_spans)

    @property
    def yes_no(self) -> bool:
        return self.form == "yes_no"


def question_form(question: str) -> str:
    """One of FORMS, from the question's first interrogative word (or leading auxiliary)."""
    words = [w.lower() for w in tokens(question)]
    if words and words[0] in _AUXILIARIES:
        return "yes_no"
    for i, word in enumerate(words):
        if word == "how":
            following = words[i + 1] if i + 1 < len(words) else ""
            return "quantity" if following in _QUANTITY_AFTER_HOW else "other"
        if word in _WH:
            return _WH[word]
        if word == "why":
            return "other"
    return "other"


# Words of the opening after the interrogative word ("what date did the"): what the question asks
# for is said there, before its topic.
OPENING_WORDS = 4
_INTERROGATIVES = frozenset("who whom whose what which when where why how".split())
_PREPOSITIONS = frozenset("on in at by for from to of since until during after before".split())


def opening_span(question: str) -> tuple[int, int]:
    """Offsets of the question's opening: its first interrogative word with the preposition just
    before it, if any, and the `OPENING_WORDS - 1` words after it ("On what date did the",
    "Which company, recently reported"), or its first `OPENING_WORDS` words when it has no
    interrogative word ("Does the TechCrunch article"). An answer-type model trained with
    `--answer-type-input opening` reads this span's vector (`qa.answer_type`): the whole
    question's vector is mostly its topic."""
    words = list(TOKEN.finditer(question))
    if not words:
        return (0, len(question))
    lower = [w.group(0).lower() for w in words]
    at = next((i for i, w in enumerate(lower) if w in _INTERROGATIVES), 0)
    first = at - 1 if at > 0 and lower[at - 1] in _PREPOSITIONS else at
    last = min(at + OPENING_WORDS, len(words)) - 1
    return (words[first].start(), words[last].end())


def clause_spans(question: str) -> tuple[tuple[int, int], ...]:
    """Offsets of the clauses of a long question (at least `_MIN_CLAUSE_WORDS` words each), or
    () when it has only one."""
    spans, at = [], 0
    for sep in [*_CLAUSE_SPLIT.finditer(question), None]:
        end = sep.start() if sep else len(question.rstrip("?. "))
        if end > at and len(tokens(question[at:end])) >= _MIN_CLAUSE_WORDS:
            spans.append((at, end))
        if sep:
            at = sep.end()
    return tuple(spans) if len(spans) > 1 else ()


def analyse(question: str, catalog: SourceCatalog | None = None) -> Question:
    """The question's form, clauses, terms, and the indexed sources it names (with `catalog`)."""
    return Question(
        text=question,
        form=question_form(question),
        clause_spans=clause_spans(question),
        terms=tuple(content_terms(question)),
        sources=catalog.named_sources(question) if catalog else (),
        opening_span=opening_span(question),
    )


@dataclass
class Candidate:
    """A sentence of a retrieved passage; `start`/`end` are offsets in the article."""

    passage: Passage
    rank: int  # the passage's rank by retrieval score, 0 = best
    start: int
    end: int
    text: str
    prev: int | None = None  # index of the previous / next candidate in the same passage
    next: int | None = None
    terms: frozenset[str] = field(default_factory=frozenset)
    words: tuple[str, ...] = ()  # `tokens(text)`, split once


def candidates(passages: Sequence[Passage], question: Question | None = None) -> list[Candidate]:
    """Every sentence of every passage, deduplicated across overlapping chunks (best rank kept).

    For a question that asks for something (not yes/no), a sentence that adds no content word
    to the question's own cannot answer it and is left out ("Who called the meeting a waste of
    time?" quoted back), unless nothing else is left.
    """
    order = sorted(range(len(passages)), key=lambda i: -passages[i].score)
    seen: set[tuple[str, int]] = set()
    long_ones: list[Candidate] = []
    short_ones: list[Candidate] = []
    for rank, i in enumerate(order):
        passage = passages[i]
        for span in split_sentences(passage.text):
            key = (passage.article_id, passage.start + span.start)
            if key in seen:
                continue
            seen.add(key)
            text = passage.text[span.start : span.end]
            cand = Candidate(passage, rank, passage.start + span.start, passage.start + span.end, text)
            cand.words = tuple(tokens(text))
            cand.terms = frozenset(terms_of(cand.words))
            (long_ones if len(cand.words) >= MIN_WORDS else short_ones).append(cand)
    chosen = long_ones or short_ones
    if question is not None and not question.yes_no:
        asked = set(question.terms)
        adding = [c for c in chosen if not c.terms <= asked]
        chosen = adding or chosen
    return linked(chosen)


def linked(cands: list[Candidate]) -> list[Candidate]:
    """`cands` with `prev`/`next` set to their neighbours in the same passage (in text order)."""
    by_passage: dict[str, list[int]] = {}
    for j, cand in enumerate(cands):
        cand.prev = cand.next = None
        by_passage.setdefault(cand.passage.chunk_id, []).append(j)
    for indices in by_passage.values():
        indices.sort(key=lambda j: cands[j].start)
        for before, after in zip(indices, indices[1:]):
            cands[after].prev = before
            cands[before].next = after
    return cands


QUESTION_ROW = 0
OPENING_ROW = 1
CLAUSE_ROWS = slice(2, None)
"""Rows of `question_vectors`: the question, its opening, then its clauses."""


def question_vectors(question: Question, embeddings: Any) -> np.ndarray:
    """Unit vectors of the question (row QUESTION_ROW), of its opening (OPENING_ROW) and of its
    clauses (CLAUSE_ROWS).

    The opening's and the clauses' vectors come from the question's own pass through the model
    (the mean of its token states over each span) when the model gives span vectors, so a
    question costs one short encode; otherwise they are encoded as texts in the same batch.
    """
    if getattr(embeddings, "supports_spans", False):
        spans = [question.opening_span, *question.clause_spans]
        whole, per_text = embeddings.encode_with_spans([question.text], [spans])
        return np.vstack([whole[:1], per_text[0].vectors]).astype(np.float32)
    return np.asarray(embeddings.encode([question.text, question.opening, *question.clauses]), dtype=np.float32)


def sentence_vectors(cands: Sequence[Candidate], embeddings: Any, stored: SentenceVectorSource | None) -> np.ndarray:
    """One unit vector per candidate: stored ones where the index has them, the rest encoded
    in one batch."""
    found: dict[str, dict[tuple[int, int], np.ndarray]] = {}
    if stored is not None and cands:
        found = {cid: spans.lookup() for cid, spans in stored(list({c.passage.chunk_id for c in cands})).items()}
    rows: list[np.ndarray | None] = [
        found.get(c.passage.chunk_id, {}).get((c.start - c.passage.start, c.end - c.passage.start)) for c in cands
    ]
    missing = [j for j, row in enumerate(rows) if row is None]
    if missing:
        for j, vector in zip(missing, embeddings.encode([cands[j].text for j in missing])):
            rows[j] = vector
    if not rows:
        return np.zeros((0, 0), np.float32)
    return np.vstack(rows).astype(np.float32)


def _idf_share(weights: dict[str, float], terms: frozenset[str] | set[str], total: float) -> float:
    return sum(w for t, w in weights.items() if t in terms) / total if total else 0.0


def features(
    question: Question,
    cands: Sequence[Candidate],
    text_vectors: np.ndarray,
    sentence_vectors: np.ndarray,
    corpus: tuple[dict[str, int], int] | None = None,
) -> np.ndarray:
    """The (len(cands), len(FEATURES)) feature matrix. `text_vectors`: `question_vectors`'s
    rows (the question, its opening, its clauses in `question.clauses` order). `corpus`:
    document frequencies of the question's terms over the whole index and the number of chunks
    (None: the candidates stand in for the corpus)."""
    n = len(cands)
    out = np.zeros((n, len(FEATURES)), dtype=np.float32)
    if n == 0:
        return out
    col = {name: i for i, name in enumerate(FEATURES)}
    cos_q = sentence_vectors @ text_vectors[QUESTION_ROW]
    clauses = text_vectors[CLAUSE_ROWS]
    cos_clause = (sentence_vectors @ clauses.T).max(axis=1) if len(clauses) else cos_q

    doc_freq: dict[str, int] = {}
    for cand in cands:
        for term in cand.terms:
            doc_freq[term] = doc_freq.get(term, 0) + 1
    idf = {t: math.log(1 + (n + 1) / (1 + doc_freq.get(t, 0))) for t in question.terms}
    idf_total = sum(idf.values())
    clause_weights = []
    for clause in question.clauses:
        weights = {t: idf.get(t, 0.0) for t in content_terms(clause)}
        clause_weights.append((weights, sum(weights.values())))
    overlap = np.array([_idf_share(idf, c.terms, idf_total) for c in cands], dtype=np.float32)
    # Corpus IDF: within the candidates a term the top article repeats ("meeting") looks common;
    # over the whole collection it is rarer than a framing verb ("called").
    if corpus is not None:
        frequencies, chunks = corpus
        corpus_idf = {t: math.log(1 + (chunks + 1) / (1 + frequencies.get(t, 0))) for t in question.terms}
    else:
        corpus_idf = idf
    corpus_total = sum(corpus_idf.values())
    top_idf = max(corpus_idf.values(), default=0.0) or 1.0

    def missing_specific(terms: frozenset[str] | set[str]) -> float:
        """The most specific question term the text lacks, relative to the most specific one
        overall (1.0: it lacks the question's rarest term)."""
        return max((w for t, w in corpus_idf.items() if t not in terms), default=0.0) / top_idf

    q_terms = set(question.terms)
    q_lower = question.text.lower()
    new_names = [{w.lower() for w in capitalised_words(c.text) if w.lower() not in q_lower} for c in cands]
    names_in_article: dict[str, set[str]] = {}
    for cand, names in zip(cands, new_names):
        names_in_article.setdefault(cand.passage.article_id, set()).update(names)
    other_articles = max(len(names_in_article) - 1, 1)
    top_score = max(c.passage.score for c in cands) or 1.0
    title_terms: dict[str, frozenset[str]] = {}
    article_terms: dict[str, set[str]] = {}
    for cand in cands:
        article_terms.setdefault(cand.passage.article_id, set()).update(cand.terms)
    # The years the question names ("the 2018 Chicago Marathon"), against each article's year
    # of publication and the years its retrieved passages write: a report of another year's
    # event is about something else.
    question_years = years(question.text)
    article_years: dict[str, set[str]] = {}
    if question_years:
        passages = {cand.passage.chunk_id: cand.passage for cand in cands}  # each text read once
        for p in passages.values():
            if p.article_id not in article_years:
                article_years[p.article_id] = {str(p.published_at.year)} if p.published_at else set()
            article_years[p.article_id] |= years(p.text)

    for j, cand in enumerate(cands):
        row = out[j]
        p = cand.passage
        row[col["cos_question"]] = cos_q[j]
        row[col["cos_question_rel"]] = cos_q[j] - cos_q.max()
        row[col["cos_clause_max"]] = cos_clause[j]
        row[col["cos_clause_rel"]] = cos_clause[j] - cos_clause.max()
        row[col["cos_prev"]] = cos_q[cand.prev] if cand.prev is not None else 0.0
        row[col["cos_next"]] = cos_q[cand.next] if cand.next is not None else 0.0
        row[col["overlap"]] = overlap[j]
        row[col["overlap_rel"]] = overlap[j] - overlap.max()
        row[col["overlap_clause_max"]] = max(
            (_idf_share(w, cand.terms, t) for w, t in clause_weights), default=overlap[j]
        )
        window = set(cand.terms)
        for other in (cand.prev, cand.next):
            if other is not None:
                window |= cands[other].terms
        row[col["overlap_window"]] = _idf_share(idf, window, idf_total)
        row[col["overlap_corpus"]] = _idf_share(corpus_idf, cand.terms, corpus_total)
        row[col["overlap_corpus_window"]] = _idf_share(corpus_idf, window, corpus_total)
        row[col["missing_specific"]] = missing_specific(cand.terms)
        row[col["missing_specific_window"]] = missing_specific(window)
        row[col["overlap_article"]] = _idf_share(idf, article_terms[p.article_id], idf_total)
        if p.article_id not in title_terms:
            title_terms[p.article_id] = frozenset(content_terms(p.title))
        row[col["overlap_title"]] = _idf_share(idf, title_terms[p.article_id], idf_total)
        row[col["source_named"]] = float(bool(p.source) and p.source in question.sources)
        row[col["any_source_named"]] = float(bool(question.sources))
        row[col["n_sources_named"]] = min(len(question.sources), 4) / 4
        row[col["passage_score_rel"]] = p.score / top_score
        row[col["inv_rank"]] = 1.0 / (1 + cand.rank)
        row[col["inv_dense_rank"]] = 1.0 / p.dense_rank if p.dense_rank else 0.0
        row[col["inv_lexical_rank"]] = 1.0 / p.lexical_rank if p.lexical_rank else 0.0
        row[col["lead"]] = float(cand.start == 0)
        row[col["log_offset"]] = math.log1p(cand.start) / 10
        words = cand.words
        row[col["log_words"]] = math.log1p(len(words)) / 4
        row[col["new_names"]] = min(len(new_names[j]), 5) / 5
        row[col["shared_names"]] = (
            max(
                (
                    sum(name in names for article, names in names_in_article.items() if article != p.article_id)
                    for name in new_names[j]
                ),
                default=0,
            )
            / other_articles
        )
        # A year is a date, not a count ("In 1992, she ran ..." gives no number of votes).
        row[col["new_numbers"]] = float(any(is_count(w) and w not in question.text and not years(w) for w in words))
        row[col["year"]] = float(has_year(cand.text))
        row[col["new_date"]] = float(new_date(cand.text, question.text))
        row[col["year_agrees"]] = (
            len(question_years & article_years[p.article_id]) / len(question_years) if question_years else 1.0
        )
        row[col["echo"]] = len(cand.terms & q_terms) / len(cand.terms) if cand.terms else 1.0
        row[col["quote"]] = float(bool(_QUOTE.search(cand.text)))
        row[col["log_question_words"]] = math.log1p(len(tokens(question.text))) / 4
        row[col[f"form_{question.form}"]] = 1.0
    return out
