"""Evaluation on question sets: retrieval hits, answer accuracy, abstention, latency.

Question format (one JSON object a line): `{"id", "question", "answer", "article_ids",
"type"}` with `type` "factoid" (answerable) or null (not answerable from the articles; JSON
null or the string "null"); an optional `question_date` (YYYY-MM-DD or YYYY/MM/DD) is passed as
"today". Extra keys are ignored.

Answer accuracy counts an answerable question as correct when the gold answer occurs, as whole
words, in the shown answer (the short answer and its quotes). Questions whose gold answer is
"Yes" or "No" are counted apart (`yes_no`): the extractive answerer quotes the reports and
leaves the yes/no to the reader, so only an answer that starts with the right word counts.

`evaluate_qa` runs a question set through an `ArticleQA` (and, when asked, through the
LangChain tutorial recipe over the same articles) and returns the reports; `articleqa eval`
only prints them.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from articleqa.qa.models import Answer, Passage

if TYPE_CHECKING:
    from articleqa.qa.api import ArticleQA


class EvalQuestion(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    question: str = Field(min_length=1)
    answer: str = ""
    article_ids: list[str] = Field(default_factory=list)
    type: Literal["factoid"] | None = None
    question_date: date | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _null_string(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() in {"null", "none", ""} else value

    @field_validator("question_date", mode="before")
    @classmethod
    def _slashed_date(cls, value: object) -> object:
        if isinstance(value, str) and re.fullmatch(r"\d{4}/\d{1,2}/\d{1,2}", value.strip()):
            year, month, day = (int(part) for part in value.strip().split("/"))
            return date(year, month, day)
        return value

    @property
    def yes_no(self) -> bool:
        return self.type == "factoid" and normalise(self.answer) in YES_NO


YES_NO = frozenset({"yes", "no"})


class QuestionResult(BaseModel):
    id: str
    type: str  # "factoid" (a short answer), "yes_no" (gold answer Yes or No) or "null"
    question: str
    gold: str
    gold_articles: list[str]
    answer: str
    grounded: bool
    score: float | None
    answer_hit: bool  # gold answer string in a retrieved passage
    answer_rank: int | None  # rank (1-based) of the first retrieved passage holding it
    article_hit: bool  # a gold article among the retrieved passages
    correct: bool  # factoid: gold in the (grounded) answer; yes_no: answer starts with it; null: abstained
    cited_articles: list[str]
    seconds: float
    short_answer: str | None = None  # the span shown first (a name, number or date), if any

    @property
    def answerable(self) -> bool:
        return self.type != "null"

    @property
    def all_gold_cited(self) -> bool:
        return set(self.gold_articles) <= set(self.cited_articles)


class Metrics(BaseModel):
    questions: int
    answer_hit_at_k: float | None = None
    answer_hit_at_1: float | None = None
    answer_mrr: float | None = None
    article_hit_at_k: float | None = None
    answer_accuracy: float | None = None
    citation_precision: float | None = None
    false_abstention_rate: float | None = None
    abstention_rate: float | None = None
    short_answer_shown: float | None = Field(
        None, description="Answered short-answer questions: share whose answer shows a short answer first."
    )
    short_answer_right: float | None = Field(
        None, description="Of the short answers shown: share that is the gold answer (`short_answer_matches`)."
    )
    two_article_both_cited: float | None = Field(
        None, description="Answerable questions with exactly two evidence articles: share citing both."
    )
    multi_article_cited: float | None = Field(
        None, description="Answerable questions with two or more evidence articles: share citing at least two of them."
    )
    latency_p50_ms: float
    latency_p95_ms: float


class EvalReport(BaseModel):
    k: int
    overall: Metrics
    by_type: dict[str, Metrics]
    results: list[QuestionResult]


class EvalRun(BaseModel):
    """What `evaluate_qa` measured: one report per system, "articleqa" first, then "baseline"
    (the LangChain tutorial recipe) when it was asked for."""

    questions: int
    k: int
    mode: str  # Article QA's retrieval: hybrid, dense or lexical
    reports: dict[str, EvalReport]


EvalProgress = Callable[[str, int, int | None], None]
"""`progress(phase, done, total)`: phase "articleqa" (questions answered), "baseline-index"
(the recipe indexing the articles; total None) or "baseline" (questions answered)."""


def load_questions(path: str | Path) -> list[EvalQuestion]:
    """Read a question file; every bad line is reported with its number.

    Raises:
        ValueError: Naming each bad line and what is wrong with it.
    """
    questions: list[EvalQuestion] = []
    problems: list[str] = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            questions.append(EvalQuestion.model_validate(json.loads(line)))
        except json.JSONDecodeError as exc:
            problems.append(f"line {n}: invalid JSON: {exc.msg}")
        except ValidationError as exc:
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            problems.append(f"line {n}: {detail}")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems[:10]))
    if not questions:
        raise ValueError(f"{path}: no questions")
    return questions


_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-"})


def normalise(text: str) -> str:
    """Case, Unicode form, quote marks, dashes and whitespace folded, for string matching."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()
    return re.sub(r"\s+", " ", text).strip()


def contains(haystack: str, needle: str) -> bool:
    """`needle` occurs in `haystack` as whole words (folded as in `normalise`)."""
    needle = normalise(needle)
    if not needle:
        return False
    return re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", normalise(haystack)) is not None


def short_answer_matches(span: str, gold: str) -> bool:
    """A short answer is the gold answer: it contains it as whole words, or it is a part of it
    holding at least half its words ("Bankman-Fried" for "Sam Bankman-Fried")."""
    if contains(span, gold):
        return True
    return contains(gold, span) and 2 * len(normalise(span).split()) >= len(normalise(gold).split())


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _mean(flags: Iterable[bool]) -> float | None:
    flags = list(flags)
    return round(sum(flags) / len(flags), 4) if flags else None


def metrics(results: Sequence[QuestionResult]) -> Metrics:
    """Metrics of `results`: hits and accuracy over short-answer questions ("factoid"),
    abstention over every answerable question ("factoid" and "yes_no") and over "null"."""
    factoid = [r for r in results if r.type == "factoid"]
    answerable = [r for r in results if r.answerable]
    null = [r for r in results if not r.answerable]
    cited = [(a, r) for r in answerable for a in r.cited_articles]
    two = [r for r in answerable if len(set(r.gold_articles)) == 2]
    multi = [r for r in answerable if len(set(r.gold_articles)) >= 2]
    latencies = [r.seconds * 1000 for r in results]
    answered = [r for r in factoid if r.grounded]
    shown = [r for r in answered if r.short_answer]
    return Metrics(
        questions=len(results),
        answer_hit_at_k=_mean(r.answer_hit for r in factoid),
        answer_hit_at_1=_mean(r.answer_rank == 1 for r in factoid),
        answer_mrr=round(sum(1 / r.answer_rank for r in factoid if r.answer_rank) / len(factoid), 4)
        if factoid
        else None,
        article_hit_at_k=_mean(r.article_hit for r in factoid),
        answer_accuracy=_mean(r.correct for r in (factoid or answerable)),
        citation_precision=_mean(a in r.gold_articles for a, r in cited) if cited else None,
        false_abstention_rate=_mean(not r.grounded for r in answerable),
        short_answer_shown=_mean(bool(r.short_answer) for r in answered),
        short_answer_right=_mean(short_answer_matches(r.short_answer or "", r.gold) for r in shown),
        abstention_rate=_mean(not r.grounded for r in null),
        two_article_both_cited=_mean(r.all_gold_cited for r in two),
        multi_article_cited=_mean(len(set(r.cited_articles) & set(r.gold_articles)) >= 2 for r in multi),
        latency_p50_ms=round(percentile(latencies, 50), 1),
        latency_p95_ms=round(percentile(latencies, 95), 1),
    )


def evaluate(
    ask: Callable[..., tuple[Answer, list]],
    questions: Sequence[EvalQuestion],
    *,
    k: int,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Run every question through `ask` and score the answers.

    Args:
        ask: `ask(question, today) -> (answer, passages)`; passages have `.text` and
            `.article_id` (the retrieved context the answer was chosen from).
        questions: The question set.
        k: Passages retrieved per question (reported with the results).
        progress: Called as `progress(done, total)`.
    """
    results: list[QuestionResult] = []
    for i, q in enumerate(questions, 1):
        started = time.perf_counter()
        answer, passages = ask(q.question, q.question_date)
        seconds = time.perf_counter() - started
        kind = "null" if q.type != "factoid" else "yes_no" if q.yes_no else "factoid"
        ranks = [i for i, p in enumerate(passages, 1) if contains(p.text, q.answer)] if kind == "factoid" else []
        result = QuestionResult(
            id=q.id,
            type=kind,
            question=q.question,
            gold=q.answer,
            gold_articles=q.article_ids,
            answer=answer.text,
            grounded=answer.grounded,
            score=answer.score,
            answer_hit=bool(ranks),
            answer_rank=ranks[0] if ranks else None,
            article_hit=any(p.article_id in q.article_ids for p in passages),
            correct=_correct(kind, answer, q.answer),
            cited_articles=[c.article_id for c in answer.citations],
            seconds=seconds,
            short_answer=answer.short_answer if answer.grounded else None,
        )
        results.append(result)
        if progress:
            progress(i, len(questions))
    by_type = {t: metrics([r for r in results if r.type == t]) for t in ("factoid", "yes_no", "null")}
    by_type["answerable"] = metrics([r for r in results if r.answerable])
    return EvalReport(k=k, overall=metrics(results), by_type=by_type, results=results)


def qa_asker(qa: ArticleQA) -> Callable[[str, date | None], tuple[Answer, list[Passage]]]:
    """`ask(question, today) -> (answer, passages)` for `evaluate`, over `qa`: the answer
    together with the passages it was chosen from."""

    def ask(question: str, today: date | None) -> tuple[Answer, list[Passage]]:
        result = qa.retrieve(question, today=today)
        return qa.answer_from(question, result), result.passages

    return ask


def evaluate_qa(
    qa: ArticleQA,
    questions: Sequence[EvalQuestion],
    *,
    baseline: bool = False,
    progress: EvalProgress | None = None,
) -> EvalRun:
    """Evaluate `qa` (with its own `k` and retrieval mode) on `questions`.

    Args:
        qa: An open `ArticleQA`; it stays open.
        questions: The question set (`load_questions`).
        baseline: Also run the usual LangChain RAG recipe (`qa.baseline.BaselineRecipe`:
            RecursiveCharacterTextSplitter 1000/200, the same embedding model run on PyTorch,
            Chroma, similarity search, the top chunk as the answer) over the articles of
            `qa`'s index, with the same `k`, in the same run.
        progress: See `EvalProgress`.
    """
    k = qa.k

    def phase(name: str) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        progress(name, 0, len(questions))
        return lambda done, total: progress(name, done, total)

    reports = {"articleqa": evaluate(qa_asker(qa), questions, k=k, progress=phase("articleqa"))}
    if baseline:
        from articleqa.index import get_embeddings
        from articleqa.qa.baseline import BaselineRecipe

        # The recipe as published: sentence-transformers on PyTorch, same model.
        recipe = BaselineRecipe(get_embeddings(qa.store.embedding_model, backend="torch"))
        try:
            if progress is not None:
                progress("baseline-index", 0, None)
            recipe.index(qa.store.articles.list())
            reports["baseline"] = evaluate(
                lambda question, today: recipe.ask(question, k), questions, k=k, progress=phase("baseline")
            )
        finally:
            recipe.close()
    return EvalRun(questions=len(questions), k=k, mode=qa.retrieval_mode, reports=reports)


def _correct(kind: str, answer: Answer, gold: str) -> bool:
    if kind == "null":
        return not answer.grounded
    if not answer.grounded:
        return False
    if kind == "yes_no":
        first = re.match(r"\W*(\w+)", answer.short_answer or answer.text)
        return bool(first) and first.group(1).lower() == normalise(gold)
    return contains(answer.text, gold)
