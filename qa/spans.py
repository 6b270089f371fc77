"""The short answer inside a quoted sentence: the name, number or date the question asks for.

A light extractor over the sentence the scorer ranked best: "Who ..." and "Which ..." want a
name (a run of capitalised words), "How many ..." a number with its unit, "When ..." a date.
Words the question already contains are never the answer ("Who is Sam Altman's successor?" is
not answered by "Altman"). `candidates` lists every span that fits; the answerer lets the
learned span ranker (`qa.span_ranker`) choose among them, and `short_answer` takes the first.
The span always lies inside the sentence, so it is as verified as the quote; when nothing fits,
there is no short answer and the quote stands alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from articleqa.index.text import STOPWORDS
from articleqa.qa.answer_type import ANSWER_TYPES
from articleqa.qa.text import CALENDAR_WORDS

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_DATE = re.compile(
    rf"\b(?:{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?|\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}(?:,?\s+\d{{4}})?"
    rf"|{_MONTH}\s+\d{{4}}|(?:1[89]|20)\d\d)\b"
)
# A number (ending in a digit: "35, fell" is "35"), optionally with a currency sign before it and
# a scale or unit word after it.
_QUANTITY = re.compile(
    r"[$€£¥]?\d(?:[\d,.]*\d)?(?:\s?%|\s+(?:percent|per cent|million|billion|trillion|thousand|hundred)\b)?"
    r"(?:\s+[a-z]+)?"
)
_NAME_WORD = r"[A-Z][\w’'&.\-]*"
_NAME = re.compile(rf"{_NAME_WORD}(?:\s+(?:of|de|van|von|the|and|&)?\s*{_NAME_WORD})*")


@dataclass(frozen=True)
class Span:
    """`sentence[start:end] == text`."""

    text: str
    start: int
    end: int


def _fold(text: str) -> str:
    return text.lower().replace("’", "'")


def _words(text: str) -> list[str]:
    return re.findall(r"[\w'’-]+", text)


def _question_words(question: str) -> tuple[set[str], set[str]]:
    """(all folded words of the question, folded words it writes capitalised after its first)."""
    words = _words(question)
    folded = {_fold(w).removesuffix("'s") for w in words}
    names = {_fold(w).removesuffix("'s") for w in words[1:] if w[:1].isupper()}
    return folded, names


def _trim(words: list[str], asked: set[str]) -> list[str]:
    """Drop function words and words of the question from both ends of a span."""

    def drop(w: str) -> bool:
        f = _fold(w).removesuffix("'s")
        return f in STOPWORDS or f in asked

    while words and drop(words[0]):
        words = words[1:]
    while words and drop(words[-1]):
        words = words[:-1]
    return words


def _asks_for_statement(question: str) -> bool:
    """ "What did X say ...", "What is the reason ...": a what-question followed by a verb
    wants a statement, not a name, unless it asks for "the name" outright."""
    words = [_fold(w) for w in _words(question)]
    for i, w in enumerate(words):
        if w in ("what", "which"):
            following = words[i + 1 : i + 4]
            return bool(following) and following[0] in _AUXILIARIES and "name" not in following
    return False


_AUXILIARIES = frozenset("is are was were do does did has have had will would can could should may might".split())


_CLOSING_QUOTES = "\"”’'"


def _modifies_next_word(sentence: str, end: int) -> bool:
    """The span is directly followed by a lowercase content word: "European official",
    "Macron-Trump meeting", "ChatGPT maker", the “Anti-Hero” singer use the name as a
    modifier, not as the answer."""
    while sentence[end : end + 1] and sentence[end] in _CLOSING_QUOTES:
        end += 1  # a quoted title: “Anti-Hero” singer
    after = _words(sentence[end:])
    return (
        bool(after) and after[0][:1].islower() and _fold(after[0]) not in STOPWORDS and sentence[end : end + 1] == " "
    )


_SCALED = re.compile(r"[$€£¥%]|\b(?:percent|per cent|million|billion|trillion|thousand|hundred)\b")


def _quantity_fit(question: str, candidate: str) -> int:
    """2: the number counts the thing the question asks about ("How many peacekeepers" ->
    "30,000 peacekeepers"); 1: an amount with a currency, percent or scale word; 0: any number."""
    asked = re.search(r"\bhow\s+(?:many|much)\s+([\w'’-]+)", question, re.IGNORECASE)
    words = candidate.split()
    if asked and len(words) > 1 and _fold(words[-1]).rstrip("s") == _fold(asked.group(1)).rstrip("s"):
        return 2
    return 1 if _SCALED.search(candidate) else 0


_FORM_OF_KIND = {"date": "when", "count": "quantity"}
"""The form whose candidates a kind of `qa.answer_type.ANSWER_TYPES` wants, where it is not a name."""


def span_form(form: str, answer_types: Sequence[float] | None) -> str:
    """The form whose candidates answer a question of `form` (`qa.features.question_form`),
    given the answer-type model's P(name, count, date, other) for it (`qa.answer_type`).

    "Who", "when", "where" and "how many" say what kind of answer they want; "what" and "which"
    do not: "On what date ...", "In what year ...", "What percentage ..." want a date or a
    number, which the answer-type model reads from the question's opening. For those two the
    model's likeliest kind decides when it is a date or a count; a name or anything else keeps
    "what" (names, as before). Without the model's probabilities, `form` as it is.
    """
    if form != "what" or answer_types is None:
        return form
    probabilities = list(answer_types)
    if len(probabilities) != len(ANSWER_TYPES):
        raise ValueError(f"answer-type probabilities {probabilities!r}: expected one for each of {ANSWER_TYPES}")
    kind = ANSWER_TYPES[max(range(len(probabilities)), key=probabilities.__getitem__)]
    return _FORM_OF_KIND.get(kind, form)


def short_answer(question: str, form: str, sentence: str) -> Span | None:
    """The span of `sentence` that answers a question of `form` (see `qa.features.FORMS`): the
    first of `candidates`."""
    return next(iter(candidates(question, form, sentence)), None)


def candidates(question: str, form: str, sentence: str) -> list[Span]:
    """Every span of `sentence` that could answer a question of `form`, in the extractor's
    order of preference (text order; for "How many", numbers that count the asked thing first).
    Empty when the question wants no name, number or date."""
    if form in ("yes_no", "other") or (form == "what" and _asks_for_statement(question)):
        return []
    found: list[Span] = []
    pattern = _DATE if form == "when" else _QUANTITY if form == "quantity" else _NAME
    asked, question_names = _question_words(question)
    matches = list(pattern.finditer(sentence))
    if form == "quantity":
        matches.sort(key=lambda m: -_quantity_fit(question, m.group(0)))  # stable: ties keep text order
    for match in matches:
        words = _words(match.group(0)) if form not in ("when", "quantity") else match.group(0).split()
        if form in ("who", "where", "what"):
            if any(_fold(w).removesuffix("'s") in question_names for w in words):
                continue  # names the question's own subject ("Lavrov" for "What did Lavrov say")
            words = _trim(words, asked)
            if not words or (match.start() == 0 and len(words) == 1 and sentence.startswith(words[0])):
                continue  # nothing left, or one capitalised word opening the sentence ("Another")
            if all(_fold(w).rstrip(".") in CALENDAR_WORDS for w in words):
                continue  # a month or weekday is a date, not the name asked for ("In late December")
        elif form == "quantity" and len(words) > 1 and _fold(words[-1]) in STOPWORDS:
            words = words[:-1]  # "12 of the ..." keeps "12"
        text = " ".join(words).rstrip(".,;:’'\"")
        start = sentence.find(words[0], match.start()) if words else -1
        end = sentence.find(words[-1], start) + len(words[-1]) if words else -1
        if start < 0 or end <= start:
            continue
        text = sentence[start:end].rstrip(".,;:’'\"")
        if not text or all(_fold(w).removesuffix("'s") in asked for w in _words(text)):
            continue
        if form in ("who", "where", "what") and len(words) == 1 and _modifies_next_word(sentence, end):
            continue
        span = Span(text, start, start + len(text))
        if span not in found:
            found.append(span)
    return found
