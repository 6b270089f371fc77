"""Prompt templates are files; rendering names any missing variable."""

from __future__ import annotations

import pytest

from articleqa.prompts import MissingVariablesError, UnknownPromptError, load_prompt, render_prompt


def test_templates_declare_their_variables():
    assert load_prompt("condense_question").variables == ["history", "question"]
    assert load_prompt("answer").variables == ["today", "passages", "question"]


def test_render_fills_every_placeholder():
    text = render_prompt("condense_question", history="User: Who met Trump?", question="What did he want?")
    assert "User: Who met Trump?" in text and "Follow-up question: What did he want?" in text
    assert "{" not in text


def test_missing_variable_is_named():
    with pytest.raises(MissingVariablesError, match="needs variable\\(s\\) passages, question"):
        render_prompt("answer", today="2020-01-01")


def test_unknown_prompt_lists_known_ones():
    with pytest.raises(UnknownPromptError, match="known: answer, condense_question"):
        load_prompt("nope")
