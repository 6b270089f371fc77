"""Turn a question set into training rows for the answer scorer: features and labels.

For each question, retrieval runs exactly as `articleqa ask` runs it; every sentence of the
retrieved passages becomes a row of `qa.features.FEATURES`. A sentence is labelled positive
when it is one of the question's evidence sentences (MultiHop-RAG lists them verbatim), or when
it belongs to an evidence article and contains the gold answer (for answers that are a name,
number or phrase, not "Yes"/"No"). Every other sentence of the retrieved passages is a hard
negative: it was retrieved for the question and does not answer it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qa.evaluation import YES_NO
from qa.evaluation import normalise as fold
from qa.scorer import AnswerScorer, QuestionScores


@dataclass
class Example:
    """One question's rows: features (n, F), labels (n,), and what the answerer needs later."""

    id: str
    question: str
    answerable: bool
    gold: str
    gold_articles: list[str]
    scores: QuestionScores
    labels: np.ndarray
    extra: dict = field(default_factory=dict)


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def is_positive(sentence: str, article_id: str, question: dict) -> bool:
    s = fold(sentence)
    if len(s) < 12:
        return False
    for evidence in question.get("evidence") or []:
        e = fold(evidence)
        if s in e or e in s:
            return True
    gold = fold(question.get("answer") or "")
    if question.get("type") and gold and gold not in YES_NO and article_id in question.get("article_ids", []):
        return re.search(rf"(?<!\w){re.escape(gold)}(?!\w)", s) is not None
    return False


def collect(
    qa, scorer: AnswerScorer, questions: Iterable[dict], *, near_misses: bool = False, progress=None
) -> list[Example]:
    """Retrieve and featurise every question with `qa` (an `ArticleQA`).

    With `near_misses`, each answerable question also gives an unanswerable example: the same
    question asked of the articles without its evidence articles (retrieval as usual, the
    evidence articles' passages dropped). Such a question is about something the collection
    nearly covers, the hard case for abstention; MultiHop-RAG's own unanswerable questions
    mostly name outlets the collection does not have, which is easy to tell.
    """
    examples: list[Example] = []
    questions = list(questions)
    catalog = qa.catalog()
    k = qa.retriever.k
    for i, q in enumerate(questions, 1):
        result = qa.retrieve(q["question"], k=k * 5 if near_misses else k)
        if near_misses and q.get("type") not in (None, "null") and q.get("article_ids"):
            others = [p for p in result.passages if p.article_id not in q["article_ids"]][:k]
            scores = scorer.featurise(q["question"], others, catalog)
            examples.append(
                Example(
                    id=q["id"] + "-near-miss",
                    question=q["question"],
                    answerable=False,
                    gold="",
                    gold_articles=[],
                    scores=scores,
                    labels=np.zeros(len(scores.candidates), dtype=np.int8),
                    extra={"near_miss": True},
                )
            )
        scores = scorer.featurise(q["question"], result.passages[:k], catalog)
        labels = np.array(
            [is_positive(c.text, c.passage.article_id, q) for c in scores.candidates], dtype=np.int8
        )
        examples.append(
            Example(
                id=q["id"],
                question=q["question"],
                answerable=q.get("type") not in (None, "null"),
                gold=q.get("answer") or "",
                gold_articles=list(q.get("article_ids") or []),
                scores=scores,
                labels=labels,
            )
        )
        if progress:
            progress(i, len(questions))
    return examples
