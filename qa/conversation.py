"""Follow-up questions: build a standalone retrieval query from the question and the chat.

"What did he say about troops?" cannot be retrieved on its own. Without an LLM, the query is
the follow-up plus the previous question and the names in the previous answer, when the
follow-up leans on the conversation (a pronoun or other reference, or almost no content
words of its own). The LLM answerer condenses with `prompts/condense_question.txt` instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel

from articleqa.index.text import STOPWORDS, query_terms

_REFERENCE = re.compile(
    r"\b(he|him|his|she|her|hers|they|them|their|theirs|it|its|this|that|these|those|there|"
    r"then|the same|the other|he's|she's|they're|it's|what else|anything else|more)\b",
    re.I,
)
_NAME = re.compile(r"\b[A-Z][\w’'-]+(?:\s+[A-Z][\w’'-]+)*")


class Turn(BaseModel):
    """One exchange in a conversation."""

    question: str
    answer: str = ""
    article_ids: list[str] = []  # articles the answer cited: the conversation is about them


def as_turns(history: Iterable[Any] | None) -> list[Turn]:
    """Normalise history given as Turns, (question, answer) pairs, or chat messages.

    Chat messages are dicts with `role` ("user"/"assistant") and `content`, as Gradio and
    OpenAI-style clients send them.

    Raises:
        ValueError: An item has none of those shapes (the message names the bad item).
    """
    turns: list[Turn] = []
    for item in history or []:
        if isinstance(item, Turn):
            turns.append(item)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            turns.append(Turn(question=str(item[0] or ""), answer=str(item[1] or "")))
        elif isinstance(item, dict) and "role" in item:
            content = item.get("content") or ""
            content = content if isinstance(content, str) else str(content)
            if item["role"] == "user":
                turns.append(Turn(question=content))
            elif item["role"] == "assistant" and turns:
                turns[-1] = Turn(question=turns[-1].question, answer=(turns[-1].answer + " " + content).strip())
        elif isinstance(item, dict) and "question" in item:
            turns.append(Turn(**item))
        else:
            raise ValueError(
                f"history item {item!r} is not a Turn, a (question, answer) pair or a "
                "{'role': ..., 'content': ...} message"
            )
    return turns


def needs_context(question: str) -> bool:
    """Whether a question leans on the conversation (a reference, or too few own words)."""
    return bool(_REFERENCE.search(question)) or len(query_terms(question)) < 2


def conversation_articles(question: str, history: Sequence[Turn]) -> tuple[str, ...]:
    """The articles a follow-up is about: those the previous answer cited, when the question
    leans on the conversation ("What did he say about troops?"); () for a standalone question."""
    if not history or not needs_context(question):
        return ()
    return tuple(dict.fromkeys(history[-1].article_ids))


def condense_query(question: str, history: Sequence[Turn]) -> str:
    """The retrieval query for `question` after `history` (most recent turn last)."""
    if not history or not needs_context(question):
        return question
    last = history[-1]
    names = []
    for name in _NAME.findall(re.sub(r"\[\d+\]", "", last.answer)):
        if name.lower() in STOPWORDS or len(name) < 3:
            continue
        if name not in names and name.lower() not in question.lower():
            names.append(name)
    extra = " ".join([last.question, *names[:8]])
    return f"{question} {extra}".strip()
