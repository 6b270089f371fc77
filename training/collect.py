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
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from articleqa.qa.defaults import DEFAULT_K
from articleqa.qa.evaluation import YES_NO
from articleqa.qa.evaluation import normalise as fold
from articleqa.qa.scorer import UNTRAINED, AnswerScorer, QuestionScores
from articleqa.qa.weights import file_sha256

if TYPE_CHECKING:
    from articleqa.qa.api import ArticleQA

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "multihop-rag"
OWN = ROOT / "training" / "data"
# Where the trainers keep their indexes (one subfolder per article set), shared by both.
TRAINING_INDEX_DIR = ROOT / ".articleqa-train"
# Chroma's `ef_search` for training retrieval. Two builds of the same index write different HNSW
# graphs (Chroma inserts with several threads), and at the product's 400
# (`index.store.HNSW_EF_SEARCH`) 12 to 15 of 300 rankings of 120 neighbours over the 9,808
# MultiHop-RAG chunk vectors differed between two builds; at 1,500, none (2026-11-28). So the
# training rows, and the weights, do not depend on which build of the index the trainer reads.
TRAINING_EF_SEARCH = 1500
# (index name, articles, question files over them). The MultiHop-RAG reporting part and
# tests/data/eval.jsonl are deliberately absent.
TRAINING_SETS = (
    (
        "multihop-rag",
        DATA / "articles.jsonl",
        (DATA / "questions-fit.jsonl", OWN / "own-multihop-articles.jsonl", OWN / "own-multihop-articles-3.jsonl"),
    ),
    ("wikinews", ROOT / "examples" / "articles", (OWN / "own-wikinews.jsonl",)),
)
# Questions of ours that teach only an answer-type model (`qa.answer_type`): varied openings of
# every kind ("In what year did Microsoft ...", "What percentage ...") with their gold short
# answers, in the training part of every fold. `train_span_ranker` reads them for the span
# ranker's kind model; `train_answer_scorer` only with --kind-questions (tried in the seventeenth
# session, not in the shipped scorer: training/README.md). That model reads nothing but the
# question, so they need no index.
ANSWER_TYPE_QUESTIONS: tuple[Path, ...] = (OWN / "own-question-kinds.jsonl",)
# More questions of ours (training/data/README.md), read only with the trainer's
# --answer-type-questions / --answerability-questions (tried, not in the shipped weights:
# training/README.md). In every model they lowered the MultiHop-RAG fitting questions' answer
# accuracy out of fold (0.613 to 0.585).
ANSWER_TYPE_ONLY = {
    "multihop-rag": (OWN / "own-multihop-articles-2.jsonl",),
    "wikinews": (OWN / "own-wikinews-2.jsonl",),
}


# An answer-cut near miss needs at least this many sentences left to score.
MIN_LEFT = 3


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


# A file's SHA-256, as the training records name the question files and the weights.
sha256 = file_sha256


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


def answer_cut(scorer: AnswerScorer, q: dict, passages, catalog) -> Example | None:
    """The question asked again of the same passages with every sentence that answers it cut
    out: its positives, and any sentence holding its short gold answer. The articles still
    report the event, and no longer give the detail asked for ("What sentence did X receive?"
    of an article on X's trial that leaves out the sentence): the near miss that topic alone
    cannot tell from an answer. None when the question has a yes/no answer, or when fewer
    than `MIN_LEFT` sentences would be left.
    """
    gold = fold(q.get("answer") or "")
    if gold in YES_NO:
        return None
    gold_re = re.compile(rf"(?<!\w){re.escape(gold)}(?!\w)") if len(gold) >= 2 else None

    def keep(c) -> bool:
        if is_positive(c.text, c.passage.article_id, q):
            return False
        return gold_re is None or gold_re.search(fold(c.text)) is None

    scores = scorer.featurise(q["question"], passages, catalog, keep=keep)
    if len(scores.candidates) < MIN_LEFT:
        return None
    return near_miss(q, scores, "answer_cut", "-answer-cut")


def near_miss(q: dict, scores: QuestionScores, kind: str, suffix: str) -> Example:
    """An unanswerable twin of question `q` (every sentence negative), of the given `kind`."""
    return Example(
        id=q["id"] + suffix,
        question=q["question"],
        answerable=False,
        gold="",
        gold_articles=[],
        scores=scores,
        labels=np.zeros(len(scores.candidates), dtype=np.int8),
        extra={"near_miss": True, "kind": kind, "of": q["id"]},
    )


def collect(
    qa,
    scorer: AnswerScorer,
    questions: Iterable[dict],
    *,
    near_misses: bool = False,
    answer_cuts: bool = False,
    progress=None,
) -> list[Example]:
    """Retrieve and featurise every question with `qa` (an `ArticleQA`).

    With `near_misses`, each answerable question also gives an unanswerable example: the same
    question asked of the articles without its evidence articles (retrieval as usual, the
    evidence articles' passages dropped). Such a question is about something the collection
    nearly covers, the hard case for abstention; MultiHop-RAG's own unanswerable questions
    mostly name outlets the collection does not have, which is easy to tell. With
    `answer_cuts` as well, each answerable question also gives an `answer_cut` near miss
    (tried, not in the shipped weights: training/README.md).
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
            examples.append(near_miss(q, scores, "articles_removed", "-near-miss"))
        scores = scorer.featurise(q["question"], result.passages[:k], catalog)
        labels = np.array([is_positive(c.text, c.passage.article_id, q) for c in scores.candidates], dtype=np.int8)
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
        if near_misses and answer_cuts and labels.any():
            cut = answer_cut(scorer, q, result.passages[:k], catalog)
            if cut is not None:
                examples.append(cut)
        if progress:
            progress(i, len(questions))
    return examples


def untrained_reader(store, k: int = DEFAULT_K) -> tuple[ArticleQA, AnswerScorer]:
    """`(ArticleQA, AnswerScorer)` over an opened index: retrieval as `articleqa ask` does it
    (`k` passages), and a scorer that only featurises (no trained weights are read, so training
    works whatever the shipped ones hold)."""
    from articleqa.qa.api import ArticleQA, extractive_answerer

    qa = ArticleQA(store, k=k, answerer=extractive_answerer(store, weights=UNTRAINED))
    scorer = AnswerScorer(
        store.embeddings,
        store.lexical.sentence_vectors,
        weights=UNTRAINED,
        document_frequencies=store.lexical.document_frequencies,
    )
    return qa, scorer


def open_training_index(index_dir: Path, name: str, articles: Path):
    """The training index `index_dir/name` (an `IndexStore`), brought up to date with `articles`
    (incrementally; built if missing) and searched with `TRAINING_EF_SEARCH`."""
    from articleqa.index import index_paths, open_index

    store = open_index(index_dir / name)
    # (before anything reads the graph: Chroma keeps the settings it loaded it with)
    store.vectors.modify(configuration={"hnsw": {"ef_search": TRAINING_EF_SEARCH}})
    report = index_paths(store, [articles])
    print(f"index {name}: {report.summary()}", file=sys.stderr)
    return store


def collect_training_sets(
    index_dir: Path,
    *,
    only: Iterable[str] | None = None,
    limit: int | None = None,
    answer_cuts: bool = False,
    extra: dict[str, tuple[Path, ...]] | None = None,
    k: int = DEFAULT_K,
) -> tuple[list[Example], dict[str, str]]:
    """Index each of `TRAINING_SETS` (incrementally, in `index_dir/NAME`) and `collect` its
    questions, near misses included; each example's `extra["set"]` names its question file.
    `extra`: more question files per article set (e.g. `ANSWER_TYPE_ONLY`), collected the same way.

    Returns the examples and the SHA-256 of every question file read.
    """
    from rich.progress import Progress

    only = set(only or ())
    collected: list[Example] = []
    data_hashes: dict[str, str] = {}
    for articles_name, articles, question_files in TRAINING_SETS:
        if only and articles_name not in only:
            continue
        store = open_training_index(index_dir, articles_name, articles)
        qa, scorer = untrained_reader(store, k)
        for path in (*question_files, *(extra or {}).get(articles_name, ())):
            questions = load(path)[:limit]
            data_hashes[str(path.relative_to(ROOT))] = sha256(path)
            with Progress(transient=True) as progress:
                task = progress.add_task(f"Retrieving and featurising {path.name}", total=len(questions))
                from_file = collect(
                    qa,
                    scorer,
                    questions,
                    near_misses=True,
                    answer_cuts=answer_cuts,
                    progress=lambda d, t, task=task: progress.update(task, completed=d),
                )
            for e in from_file:
                e.extra["set"] = path.name
            collected += from_file
        store.close()
    return collected, data_hashes
