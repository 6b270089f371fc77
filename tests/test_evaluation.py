"""Question files, metrics and the evaluation run of `articleqa eval` (logic only; the command
runs in test_cli_qa)."""

from __future__ import annotations

import json
from datetime import date

import pytest

from articleqa.qa.evaluation import (
    EvalQuestion,
    EvalRun,
    contains,
    evaluate,
    evaluate_qa,
    load_questions,
    short_answer_matches,
)
from articleqa.qa.models import Answer, Citation, Passage


def _write(tmp_path, rows):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_null_as_a_string_and_slashed_dates_are_read(tmp_path):
    path = _write(
        tmp_path,
        [
            {"id": "a", "question": "Q?", "answer": "x", "type": "factoid", "question_date": "2023/11/05"},
            {"id": "b", "question": "Q?", "answer": "", "type": "null", "question_date": "2023-11-06"},
            {"id": "c", "question": "Q?", "type": None},
        ],
    )
    a, b, c = load_questions(path)
    assert a.type == "factoid" and a.question_date == date(2023, 11, 5)
    assert b.type is None and b.question_date == date(2023, 11, 6)
    assert c.type is None


def test_bad_type_and_date_name_the_line(tmp_path):
    path = _write(
        tmp_path,
        [{"id": "a", "question": "Q?", "type": "maybe"}, {"id": "b", "question": "Q?", "question_date": "5 Nov"}],
    )
    with pytest.raises(ValueError, match=r"line 1: type.*line 2: question_date"):
        load_questions(path)


def test_gold_must_match_whole_words():
    assert contains("Sam Bankman-Fried was convicted.", "sam bankman-fried")
    assert not contains("It was not known.", "no")
    assert not contains("Another 2390 died", "390")
    assert contains("The “waste of time” remark", "waste of time")


def _passage(article_id: str, text: str) -> Passage:
    return Passage(
        chunk_id=f"{article_id}:0", article_id=article_id, title=article_id, text=text, start=0, end=len(text)
    )


def _answer(question: str, text: str, articles: list[str], short: str | None = None) -> Answer:
    citations = [Citation.of(i + 1, _passage(a, text), 0, len(text)) for i, a in enumerate(articles)]
    return Answer(question=question, text=text, grounded=bool(articles), citations=citations, short_answer=short)


def test_metrics_split_short_answers_yes_no_and_unanswerable():
    questions = [
        EvalQuestion(id="1", question="Who?", answer="Sam Altman", article_ids=["a", "b"], type="factoid"),
        EvalQuestion(id="2", question="Did both?", answer="Yes", article_ids=["a", "b"], type="factoid"),
        EvalQuestion(id="3", question="Nobody knows?", answer="", type=None),
        EvalQuestion(id="4", question="What?", answer="OpenAI", article_ids=["c", "d"], type="factoid"),
    ]
    answers = {
        "Who?": _answer("Who?", "Sam Altman: he left OpenAI.", ["a", "b"], "Sam Altman"),
        "Did both?": _answer("Did both?", "Yes reports say yes.", ["a"]),
        "Nobody knows?": _answer("Nobody knows?", "Not answered.", []),
        "What?": _answer("What?", "It was Microsoft.", ["c"]),
    }
    report = evaluate(lambda q, today: (answers[q], [_passage("a", answers[q].text)]), questions, k=1)
    assert report.by_type["factoid"].questions == 2
    assert report.by_type["factoid"].answer_accuracy == 0.5
    assert report.by_type["yes_no"].answer_accuracy == 1.0  # starts with the gold word
    assert report.by_type["null"].abstention_rate == 1.0
    answerable = report.by_type["answerable"]
    assert answerable.false_abstention_rate == 0.0
    assert answerable.two_article_both_cited == pytest.approx(1 / 3, abs=1e-3)
    assert answerable.citation_precision == 1.0
    # Of the two answered short-answer questions, one shows a short answer, and it is the gold one.
    assert report.by_type["factoid"].short_answer_shown == 0.5
    assert report.by_type["factoid"].short_answer_right == 1.0


def test_short_answer_matches_the_gold_answer_or_most_of_it():
    assert short_answer_matches("Sam Bankman-Fried", "Sam Bankman-Fried")
    assert short_answer_matches("337 suspected", "337")  # holds the gold as whole words
    assert short_answer_matches("Bankman-Fried", "Sam Bankman-Fried")  # half its words
    assert short_answer_matches("Dark Side of Comedy", "The Dark Side of Comedy")
    assert not short_answer_matches("Late", "The Late Show with Stephen Colbert")
    assert not short_answer_matches("UTC", "11:25am")
    assert not short_answer_matches("3370", "337")


class _FakeQA:
    """What `evaluate_qa` uses of an ArticleQA: k, retrieval_mode, retrieve, answer_from."""

    k = 3
    retrieval_mode = "lexical"

    def __init__(self, answers: dict[str, Answer]):
        self.answers = answers
        self.asked: list[tuple[str, date | None]] = []

    def retrieve(self, question, *, today=None):
        from types import SimpleNamespace

        self.asked.append((question, today))
        return SimpleNamespace(passages=[_passage("a", self.answers[question].text)])

    def answer_from(self, question, result):
        assert result.passages[0].text == self.answers[question].text  # the answer comes from what was retrieved
        return self.answers[question]


def test_evaluate_qa_runs_the_questions_through_the_qa_and_reports_its_k_and_mode():
    questions = [
        EvalQuestion(
            id="1",
            question="Who?",
            answer="Sam Altman",
            article_ids=["a"],
            type="factoid",
            question_date=date(2023, 11, 20),
        ),
        EvalQuestion(id="2", question="Nobody knows?", answer="", type=None),
    ]
    qa = _FakeQA(
        {
            "Who?": _answer("Who?", "Sam Altman returned.", ["a"], "Sam Altman"),
            "Nobody knows?": _answer("Nobody knows?", "Not answered.", []),
        }
    )
    calls = []
    run = evaluate_qa(qa, questions, progress=lambda phase, done, total: calls.append((phase, done, total)))
    assert isinstance(run, EvalRun)
    assert (run.questions, run.k, run.mode) == (2, 3, "lexical")
    assert list(run.reports) == ["articleqa"]  # no baseline unless asked for
    report = run.reports["articleqa"]
    assert report.k == 3
    assert report.by_type["factoid"].answer_accuracy == 1.0 and report.by_type["factoid"].answer_hit_at_1 == 1.0
    assert report.by_type["null"].abstention_rate == 1.0
    assert qa.asked == [("Who?", date(2023, 11, 20)), ("Nobody knows?", None)]  # question_date is "today"
    assert calls == [("articleqa", 0, 2), ("articleqa", 1, 2), ("articleqa", 2, 2)]
    assert EvalRun.model_validate_json(run.model_dump_json()) == run  # typed and serialisable


def test_article_qa_refuses_an_unknown_retrieval_mode_before_opening_anything(tmp_path):
    from articleqa.qa.api import ArticleQA

    with pytest.raises(ValueError, match="retrieval mode 'fuzzy' is not one of hybrid, dense, lexical"):
        ArticleQA.open(tmp_path / "none", retrieval_mode="fuzzy")
    assert not (tmp_path / "none").exists()
