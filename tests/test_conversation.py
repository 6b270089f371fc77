"""Follow-up questions are condensed with the conversation into a standalone query."""

from __future__ import annotations

import pytest

from articleqa.qa.conversation import Turn, as_turns, condense_query, conversation_articles, needs_context

HISTORY = [
    Turn(
        question="Who called the meeting a waste of time?",
        answer="Another senior European official was even more blunt in his assessment, branding the "
        "Macron-Trump meeting “a waste of time.” [1]",
    )
]


def test_follow_up_with_pronoun_takes_context():
    query = condense_query("What did he say about troops?", HISTORY)
    assert query.startswith("What did he say about troops?")
    assert "waste of time" in query and "Macron-Trump" in query


def test_standalone_question_is_left_alone():
    question = "How many people died in the Magnitogorsk building collapse?"
    assert condense_query(question, HISTORY) == question
    assert condense_query("What did he say?", []) == "What did he say?"


def test_conversation_articles_only_for_follow_ups():
    history = [Turn(question="Who called the meeting a waste of time?", article_ids=["rt-1", "wn-7", "rt-1"])]
    assert conversation_articles("What did he say about troops?", history) == ("rt-1", "wn-7")
    assert conversation_articles("Who won the Iowa caucuses?", history) == ()
    assert conversation_articles("What did he say about troops?", []) == ()


@pytest.mark.parametrize(
    "question,expected", [("And Lavrov?", True), ("What about them?", True), ("Who won the Iowa caucuses?", False)]
)
def test_needs_context(question, expected):
    assert needs_context(question) is expected


def test_history_shapes():
    messages = [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2"},
    ]
    assert as_turns(messages) == [Turn(question="Q1", answer="A1"), Turn(question="Q2")]
    assert as_turns([("Q", "A")]) == [Turn(question="Q", answer="A")]
    with pytest.raises(ValueError, match="history item 42"):
        as_turns([42])
