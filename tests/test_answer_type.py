"""The kind of answer a question wants (`qa.answer_type`), and the answer scorer's features
built on it and on time: the labels and detectors, the shipped model on real questions, and
the features of candidate sentences."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from articleqa.qa.answer_type import ANSWER_TYPES, AnswerTypeModel, answer_type, has_date, new_material
from articleqa.qa.features import (
    FEATURES,
    OPENING_ROW,
    QUESTION_ROW,
    analyse,
    candidates,
    features,
    question_vectors,
    sentence_vectors,
)
from articleqa.qa.models import Passage
from articleqa.qa.scorer import ANSWERABILITY_FEATURES, AnswerScorer, answerability_features, slot_filled
from articleqa.qa.text import capitalised_words, is_count, years


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ("Sam Bankman-Fried", "name"),
        ("Jolo Cathedral", "name"),
        ("five", "count"),
        ("over 400", "count"),
        ("$1.3 billion", "count"),
        ("2019", "date"),
        ("March 5", "date"),
        ("Yes", "other"),
        ("a suspended sentence", "other"),
        ("", "other"),
    ],
)
def test_gold_answers_are_labelled_by_kind(answer, kind):
    assert answer_type(answer) == kind


def test_numbers_in_words_count_and_one_does_not():
    assert all(is_count(w) for w in ("five", "Twenty-one", "dozens", "3.5", "30,000"))
    assert not any(is_count(w) for w in ("one", "someone", "tenth", "fivefold"))


def test_new_material_is_what_the_question_lacks():
    question = "How many girls died in the escape room fire in Koszalin?"
    assert new_material("A fire yesterday killed five girls in Koszalin.", question) == (False, True, True)
    assert new_material("The fire at the escape room in Koszalin killed the girls.", question) == (False, False, False)
    assert new_material("Police chief Jan Nowak said the room had no exit.", question)[0]
    assert has_date("on Tuesday") and has_date("in 2019") and not has_date("the maybe-party")


def test_possessive_names_match_the_question():
    assert capitalised_words("The NBA's decision followed a Utah Jazz player's test") == ["NBA", "Utah", "Jazz"]
    # Months and weekdays are dates, not names.
    assert capitalised_words("In late December, the MV Namse vanished on Tuesday.") == ["MV", "Namse"]
    assert new_material("In late December, the ship vanished.", "Who was the captain?") == (False, False, True)
    # A year is a date, not a count.
    assert new_material("In 1992, she ran for office.", "How many votes did she get?") == (False, False, True)
    assert years("In 2019 and 1999, not 12019 or 2150") == {"2019", "1999"}


def test_answer_type_model_round_trips_and_gives_probabilities():
    rng = np.random.default_rng(0)
    model = AnswerTypeModel(rng.normal(size=(4, 8)).astype(np.float32), rng.normal(size=4).astype(np.float32))
    again = AnswerTypeModel.from_json(model.to_json())
    vectors = rng.normal(size=(3, 8))
    p = again.proba(vectors)
    assert p.shape == (3, len(ANSWER_TYPES))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(p, model.proba(vectors), rtol=1e-4)
    with pytest.raises(ValueError, match="expected"):
        AnswerTypeModel.from_json({**model.to_json(), "types": ["other", "name", "count", "date"]})
    # What it reads round-trips; weights from before the choice read the whole question.
    assert again.input == "question"
    assert AnswerTypeModel.from_json({**model.to_json(), "input": "opening"}).input == "opening"
    assert AnswerTypeModel.from_json({k: v for k, v in model.to_json().items() if k != "input"}).input == "question"
    with pytest.raises(ValueError, match="expected one of"):
        AnswerTypeModel.from_json({**model.to_json(), "input": "title"})


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("What was the name of the engineer killed at the railway station?", "name"),
        ("Which company did the regulator fine for misleading customers?", "name"),
        ("How many people were injured when the bridge collapsed?", "count"),
        ("How much did the council spend on the new stadium?", "count"),
    ],
)
def test_shipped_model_knows_what_kind_of_answer_a_question_wants(embeddings, question, kind):
    """Names and counts only: the fitting answers hold 350 names and 73 counts but 17 dates,
    and the shipped model, which reads the whole question, recalls few dates (the opening's
    vector recalls more: training/README.md)."""
    scorer = AnswerScorer(embeddings)
    assert scorer.answer_type_model is not None
    row = OPENING_ROW if scorer.answer_type_model.input == "opening" else QUESTION_ROW
    p = scorer.answer_type_model.proba(question_vectors(analyse(question), embeddings)[row])[0]
    assert ANSWER_TYPES[int(np.argmax(p))] == kind, dict(zip(ANSWER_TYPES, p.round(2)))


@pytest.mark.parametrize(
    ("question", "opening"),
    [
        ("On what date did the US government shutdown begin?", "On what date did the"),
        ("Who called the meeting a waste of time?", "Who called the meeting"),
        ("Which company, recently reported on by TechCrunch, cut jobs?", "Which company, recently reported"),
        ("Considering the reports, which player scored?", "which player scored"),
        ("Does the TechCrunch article agree with The Verge?", "Does the TechCrunch article"),
        ("Why?", "Why"),
    ],
)
def test_the_opening_is_the_interrogative_and_the_words_after_it(question, opening):
    q = analyse(question)
    assert q.opening == opening
    assert question[q.opening_span[0] : q.opening_span[1]] == opening


@pytest.mark.slow
def test_question_vectors_are_the_question_its_opening_and_its_clauses(embeddings):
    q = analyse("Which outlet reported the fine, and who paid it according to Reuters?")
    assert len(q.clauses) == 2
    vectors = question_vectors(q, embeddings)
    assert vectors.shape == (2 + len(q.clauses), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-3)
    # The opening's vector is of the opening, inside the question: nearer the opening encoded
    # alone than the whole question is.
    alone = np.asarray(embeddings.encode([q.opening]))[0]
    assert vectors[OPENING_ROW] @ alone > vectors[0] @ alone


def _passage(text: str, published: date | None, article_id: str = "a") -> Passage:
    return Passage(
        chunk_id=f"{article_id}:0",
        article_id=article_id,
        title="Marathon",
        text=text,
        start=0,
        end=len(text),
        score=1.0,
        published_at=published,
    )


@pytest.mark.slow
def test_years_the_question_names_must_be_the_articles(embeddings):
    text = "Lawrence Cherono of Kenya won the men's race in Chicago on Sunday."
    col = FEATURES.index("year_agrees")

    def agrees(question: str, passage: Passage) -> float:
        q = analyse(question)
        cands = candidates([passage], q)
        x = features(q, cands, question_vectors(q, embeddings), sentence_vectors(cands, embeddings, None))
        return float(x[0, col])

    assert agrees("Who won the 2018 Chicago Marathon?", _passage(text, date(2019, 10, 14))) == 0.0
    assert agrees("Who won the 2019 Chicago Marathon?", _passage(text, date(2019, 10, 14))) == 1.0
    assert agrees("Who won the 2018 Chicago Marathon?", _passage(text + " He was third in 2018.", None)) == 1.0
    assert agrees("Who won the Chicago Marathon?", _passage(text, None)) == 1.0


@pytest.mark.slow
def test_a_sentence_without_the_wanted_name_leaves_the_slot_empty(embeddings):
    scorer = AnswerScorer(embeddings)
    question = "What was the name of the engineer killed at Waterloo station?"
    named = scorer.featurise(question, [_passage("Engineer Tom Smith was killed at Waterloo station.", None)])
    unnamed = scorer.featurise(question, [_passage("An engineer was killed while working at Waterloo station.", None)])
    col = ANSWERABILITY_FEATURES.index("top_slot_filled")
    assert answerability_features(named)[col] > 0.8
    assert answerability_features(unnamed)[col] < 0.5
    assert named.answer_types is not None
    np.testing.assert_allclose(
        slot_filled(named.features, named.answer_types), [answerability_features(named)[col]], rtol=1e-6
    )
