"""The offline extractive answerer: pick the retrieved sentences that answer the question.

No generator is involved, so the answer is always text the articles actually contain: the
best one or two sentences, quoted verbatim with a citation marker each. Every sentence of
every retrieved passage is a candidate; each is scored by a weighted sum of

- `dense`: cosine similarity between the question and the sentence (bundled MiniLM model).
  Sentence vectors come from the index (`sentence_vectors`: computed with the chunk's own
  vector at indexing time, see `index.encoding`), so a question costs one encode of the
  question; sentences without a stored vector (an index built before they existed, a model
  that cannot give them) are encoded here, in one batch;
- `lexical`: IDF-weighted share of the question's terms that the sentence contains (IDF
  computed over the candidate sentences, so names and numbers rare among them dominate);
- `prior`: the passage's retrieval rank (retrieval saw the whole chunk, the sentence
  scorer sees only the sentence: the rank breaks near-ties toward better context);
- `kind`: whether the sentence holds the kind of answer the question asks for (a number
  for "how many", a name for "who", ... see `qa.question_type`);
- `echo` (a penalty): the sentence only restates the question, adding no content word.

If the best score is below `threshold` the answerer abstains with `NO_ANSWER` and offers the
closest passages as `related` instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from index.chunking import split_sentences
from index.encoding import SpanVectors
from index.lexical import STOPWORDS
from qa.coverage import name_coverage, question_names
from qa.models import Answer, Citation, Passage
from qa.question_type import answer_kind_score, detect_question_type, stem

NO_ANSWER = "The indexed articles do not answer this question."

# All scoring weights in one place (score = sum of weight * feature). Tuned coarsely (a small
# grid, flat optimum) on tests/data/eval.jsonl with a stand-in top-8 dense retrieval over
# the bundled articles: dense similarity carries most of the signal; lexical overlap rescues
# names and numbers the small model blurs; `kind` separates "the sentence about X" from "the
# sentence that answers the question about X"; `context` lifts pronoun-led follow-up
# sentences; the rank prior only breaks near-ties. The prior uses the passage's rank, not its
# raw retrieval score, so the score scale (and the threshold) does not depend on the
# retriever's score scale.
WEIGHTS: dict[str, float] = {
    "dense": 1.0,  # cosine(question, sentence), about 0..0.9
    "context": 0.3,  # cosine(question, previous sentence of the same article)
    "lexical": 0.5,  # IDF-weighted share of question terms in the sentence, 0..1
    "prior": 0.15,  # 1 / (1 + passage rank), rank 0 = best retrieved passage
    "kind": 0.7,  # expected answer kind present: 0, 0.5 or 1
    "echo": -0.4,  # 1 if the sentence only repeats question words
}
# Abstention: the answerer abstains when the best sentence scores below DEFAULT_THRESHOLD or
# the retrieved passages mention less than DEFAULT_MIN_COVERAGE of the question's names.
# Measured on tests/data/eval.jsonl (87 answerable, 21 unanswerable questions, mostly
# near-misses about events the articles do cover) with the real hybrid retrieval, k=6:
#   min coverage  threshold  false abstention (answerable)  abstention (unanswerable)  accuracy
#   0             1.30        1.1%                           4.8%                    70.1%
#   0.5           1.30        2.3%                           9.5%                    69.0%
#   0.67          1.30        8.0%                          28.6%                    65.5%  <- default
#   1.0           1.30        9.2%                          28.6%                    64.4%
#   0.67          1.45       13.8%                          33.3%                    62.1%
# Criterion: keep false abstention on answerable questions under 10% (hiding an answer the
# articles contain is the worse error: a wrong answer is still a verbatim, cited quote the
# reader can check) and abstain on as many unanswerable questions as that allows.
DEFAULT_THRESHOLD = 1.30
# Abstain when the retrieved passages mention less than this share of the question's names
# (proper nouns, years, numbers; see qa.coverage).
DEFAULT_MIN_COVERAGE = 0.67
# Confidence = logistic((score - threshold) / CONFIDENCE_SCALE): 0.5 exactly at the
# threshold, so "answered" and "confidence >= 0.5" agree; the scale maps the usual score
# range (threshold +- 0.45) to roughly 0.1 .. 0.9.
CONFIDENCE_SCALE = 0.2
# A second sentence is kept only if its score is within this margin of the best one ...
SECOND_SENTENCE_MARGIN = 0.08
# ... and it is not a near-duplicate of the first (cosine of the two sentence embeddings).
NEAR_DUPLICATE_COSINE = 0.9
# Fragments shorter than this many words (captions, "Reuters", headlines) are skipped unless
# nothing longer exists.
MIN_WORDS = 4
# Reporting and naming verbs frame a question ("Who called X a waste of time?", "What did
# she say about Y?") but answers paraphrase them freely (branded, dubbed, described, told
# reporters), so a literal match on them counts for this fraction of its IDF weight.
FRAMING_VERB_WEIGHT = 0.3
FRAMING_VERBS = frozenset(
    stem(v)
    for v in """call called calls calling say said says saying tell told tells describe described
    name named label labelled labeled brand branded dub dubbed claim claimed state stated
    announce announced""".split()
)

_TOKEN = re.compile(r"[^\W_]+(?:['’.,][^\W_]+)*", re.UNICODE)


class _Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


SentenceVectorSource = Callable[[Sequence[str]], dict[str, SpanVectors]]
"""chunk ids -> their stored sentence vectors (e.g. `index.lexical.LexicalIndex.sentence_vectors`)."""


@dataclass(frozen=True)
class ScoredSentence:
    """A candidate sentence with its combined score.

    `start`/`end` are offsets in the article text (`passage.start` + offset in the passage),
    and `text == passage.text[start - passage.start : end - passage.start]`.
    """

    passage: Passage
    start: int
    end: int
    text: str
    score: float
    features: dict[str, float] = field(default_factory=dict)
    # The sentence's embedding, kept so the near-duplicate check needs no second encode (and
    # the answerer holds no per-question state: one instance serves concurrent requests).
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)


def _content_terms(text: str) -> list[str]:
    """Stemmed content words (stopwords and single letters dropped), in order, unique."""
    seen: list[str] = []
    for token in _TOKEN.findall(text.lower()):
        token = token.replace("’", "'").rstrip(".,")
        if token in STOPWORDS or (len(token) < 2 and not token.isdigit()):
            continue
        term = stem(token)
        if term not in seen:
            seen.append(term)
    return seen


@dataclass
class _Candidate:
    passage: Passage
    rank: int
    start: int  # offset in the article
    end: int
    text: str


class ExtractiveAnswerer:
    """Answers by quoting the best-scoring sentences of the retrieved passages.

    Args:
        embeddings: Anything with `encode(list[str]) -> np.ndarray` of unit vectors (the
            shared `index.embeddings.get_embeddings()` model).
        max_sentences: At most this many sentences in an answer (1 or 2 is sensible).
        threshold: Abstain when the best combined score is below this.
        related_k: How many related passages to offer when abstaining.
        sentence_vectors: Where stored sentence vectors come from (None: encode every
            candidate sentence per question: about 300 ms instead of 15 on 2 cores).
    """

    def __init__(
        self,
        embeddings: _Encoder,
        *,
        max_sentences: int = 2,
        threshold: float = DEFAULT_THRESHOLD,
        related_k: int = 3,
        min_coverage: float = DEFAULT_MIN_COVERAGE,
        sentence_vectors: SentenceVectorSource | None = None,
    ):
        if max_sentences < 1:
            raise ValueError(f"max_sentences must be at least 1, got {max_sentences}")
        self.embeddings = embeddings
        self.max_sentences = max_sentences
        self.threshold = threshold
        self.related_k = related_k
        self.min_coverage = min_coverage
        self.sentence_vectors = sentence_vectors

    # ---- scoring ---------------------------------------------------------------------------

    def _candidates(self, passages: list[Passage]) -> list[_Candidate]:
        """Every sentence of every passage, deduplicated across overlapping chunks."""
        # Rank passages by retrieval score (stable, so equal scores keep the caller's order).
        order = sorted(range(len(passages)), key=lambda i: -passages[i].score)
        rank_of = {i: r for r, i in enumerate(order)}
        seen: set[tuple[str, int]] = set()
        long_ones: list[_Candidate] = []
        short_ones: list[_Candidate] = []
        for i in order:
            passage = passages[i]
            for span in split_sentences(passage.text):
                key = (passage.article_id, passage.start + span.start)
                if key in seen:
                    continue  # the same sentence from an overlapping chunk (better rank kept)
                seen.add(key)
                text = passage.text[span.start : span.end]
                cand = _Candidate(passage, rank_of[i], passage.start + span.start, passage.start + span.end, text)
                (long_ones if len(_TOKEN.findall(text)) >= MIN_WORDS else short_ones).append(cand)
        return long_ones or short_ones

    def score_sentences(
        self, question: str, passages: list[Passage], *, retrieval_query: str | None = None
    ) -> list[ScoredSentence]:
        """Score every candidate sentence of `passages` against `question`.

        Args:
            question: The user's question (drives the answer type and lexical terms).
            passages: Retrieved passages; their `score` gives the retrieval prior.
            retrieval_query: If given, the text embedded for the dense similarity (e.g. the
                question rewritten with resolved dates); its terms join the lexical terms.

        Returns:
            Scored sentences, best first (ties broken by retrieval rank then text order, so the
            result is deterministic).
        """
        candidates = self._candidates(passages)
        if not candidates:
            return []
        dense_query = retrieval_query or question
        q_vec, s_vecs = self._vectors(dense_query, candidates)
        dense = s_vecs @ q_vec

        q_terms = _content_terms(question)
        if retrieval_query:
            q_terms += [t for t in _content_terms(retrieval_query) if t not in q_terms]
        sent_terms = [set(_content_terms(c.text)) for c in candidates]
        n = len(candidates)
        # Smoothed IDF over the candidates: a term in every sentence still weighs a little,
        # a term in one sentence weighs most.
        idf = {
            t: math.log(1 + (n + 1) / (1 + sum(t in s for s in sent_terms)))
            * (FRAMING_VERB_WEIGHT if t in FRAMING_VERBS else 1.0)
            for t in q_terms
        }
        idf_total = sum(idf.values()) or 1.0
        q_term_set = set(q_terms)

        # The sentence before, in the same article: answers often continue the sentence that
        # matches the question ("... Walter Munk died." -> "He was 101 ..."), and a pronoun-led
        # sentence embeds far from the question on its own.
        by_article: dict[str, list[int]] = {}
        for j, cand in enumerate(candidates):
            by_article.setdefault(cand.passage.article_id, []).append(j)
        previous: dict[int, int] = {}
        for indices in by_article.values():
            indices.sort(key=lambda j: candidates[j].start)
            for before, after in zip(indices, indices[1:]):
                previous[after] = before

        qtype = detect_question_type(question)
        top_score = max(p.score for p in passages)
        scored: list[ScoredSentence] = []
        for j, cand in enumerate(candidates):
            terms = sent_terms[j]
            lexical = sum(idf[t] for t in q_terms if t in terms) / idf_total
            # Retrieval prior relative to the best passage: fused RRF scores are close
            # together when dense and lexical disagree, and a rank-based prior would
            # exaggerate small differences.
            prior = cand.passage.score / top_score if top_score > 0 else 1.0 / (1 + cand.rank)
            kind = answer_kind_score(qtype, question, cand.text)
            # A sentence whose content words are all question words cannot answer it.
            echo = 1.0 if terms and terms <= q_term_set else 0.0
            features = {
                "dense": float(dense[j]),
                "context": float(dense[previous[j]])
                if j in previous
                else 0.0,
                "lexical": lexical,
                "prior": prior,
                "kind": kind,
                "echo": echo,
            }
            score = sum(WEIGHTS[k] * v for k, v in features.items())
            scored.append(
                ScoredSentence(cand.passage, cand.start, cand.end, cand.text, score, features, s_vecs[j])
            )
        order = sorted(
            range(len(scored)), key=lambda j: (-scored[j].score, candidates[j].rank, j)
        )
        return [scored[j] for j in order]

    def _vectors(self, query: str, candidates: list[_Candidate]) -> tuple[np.ndarray, np.ndarray]:
        """The query's vector and one vector per candidate sentence (stored ones where found)."""
        stored: dict[str, dict[tuple[int, int], np.ndarray]] = {}
        if self.sentence_vectors is not None:
            found = self.sentence_vectors([c.passage.chunk_id for c in candidates])
            stored = {chunk_id: spans.lookup() for chunk_id, spans in found.items()}
        rows: list[np.ndarray | None] = [
            stored.get(c.passage.chunk_id, {}).get((c.start - c.passage.start, c.end - c.passage.start))
            for c in candidates
        ]
        missing = [j for j, row in enumerate(rows) if row is None]
        # One batched encode for the query and the sentences without a stored vector:
        # per-sentence calls would be ~50x slower on CPU.
        encoded = self.embeddings.encode([query] + [candidates[j].text for j in missing])
        for j, vector in zip(missing, encoded[1:]):
            rows[j] = vector
        return encoded[0], np.vstack(rows)

    # ---- answering -------------------------------------------------------------------------

    def confidence(self, score: float) -> float:
        """Map a combined score to [0, 1]: logistic around the threshold (0.5 at it)."""
        return 1.0 / (1.0 + math.exp(-(score - self.threshold) / CONFIDENCE_SCALE))

    def answer(
        self, question: str, passages: list[Passage], *, retrieval_query: str | None = None
    ) -> Answer:
        """Answer `question` from `passages`, or abstain.

        Args:
            question: The user's question.
            passages: Retrieved passages, any order (their `score` ranks them).
            retrieval_query: The query retrieval used, if different from the question; it is
                what the sentences are compared to and is echoed in the answer.

        Returns:
            A grounded `Answer` quoting one or two sentences with `[n]` markers and matching
            citations, or an ungrounded one with `NO_ANSWER`, no citations and up to
            `related_k` related passages.
        """
        query = retrieval_query or question
        ranked = self.score_sentences(question, passages, retrieval_query=retrieval_query)
        coverage = name_coverage(question, passages)
        if coverage < self.min_coverage:
            missing = [n for n in question_names(question) if name_coverage(n, passages) == 0]
            return Answer(
                question=question,
                text=NO_ANSWER,
                grounded=False,
                related=self._related(ranked),
                confidence=0.0,
                score=ranked[0].score if ranked else None,
                retrieval_query=query,
                answerer="extractive",
                notes=[f"the retrieved articles do not mention {', '.join(repr(m) for m in missing)}"],
            )
        if not ranked or ranked[0].score < self.threshold:
            return Answer(
                question=question,
                text=NO_ANSWER,
                grounded=False,
                related=self._related(ranked),
                confidence=self.confidence(ranked[0].score) if ranked else 0.0,
                score=ranked[0].score if ranked else None,
                retrieval_query=query,
                answerer="extractive",
                notes=["no passage scored above the answer threshold"] if ranked else ["no passages retrieved"],
            )
        chosen = self._select(ranked)
        # Present in reading order: by article (first appearance in the ranking), then offset.
        article_order = {s.passage.article_id: i for i, s in reversed(list(enumerate(chosen)))}
        chosen.sort(key=lambda s: (article_order[s.passage.article_id], s.start))
        citations = [_citation(i + 1, s) for i, s in enumerate(chosen)]
        text = " ".join(f"{s.text} [{c.n}]" for s, c in zip(chosen, citations))
        return Answer(
            question=question,
            text=text,
            grounded=True,
            citations=citations,
            confidence=self.confidence(ranked[0].score),
            score=ranked[0].score,
            retrieval_query=query,
            answerer="extractive",
        )

    def _select(self, ranked: list[ScoredSentence]) -> list[ScoredSentence]:
        """The top sentence, plus runners-up that score close to it and add information."""
        chosen = [ranked[0]]
        for cand in ranked[1:]:
            if len(chosen) >= self.max_sentences:
                break
            if ranked[0].score - cand.score > SECOND_SENTENCE_MARGIN:
                break  # ranked best first: nothing further can be close enough
            if cand.passage.article_id != ranked[0].passage.article_id:
                continue  # a close runner-up from another article is usually another story
            if any(self._near_duplicate(cand, c) for c in chosen):
                continue
            chosen.append(cand)
        return chosen

    def _near_duplicate(self, a: ScoredSentence, b: ScoredSentence) -> bool:
        va, vb = a.vector, b.vector
        if va is not None and vb is not None and float(va @ vb) >= NEAR_DUPLICATE_COSINE:
            return True
        # Adds no content word beyond the other sentence: nothing new to say.
        return set(_content_terms(a.text)) <= set(_content_terms(b.text))

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


def _citation(n: int, s: ScoredSentence) -> Citation:
    return Citation.of(n, s.passage, s.start - s.passage.start, s.end - s.passage.start, s.score)
