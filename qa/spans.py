"""The short answer inside a quoted sentence: the name, number or date the question asks for.

A light extractor over the sentence the scorer ranked best: "Who ..." and "Which ..." want a
name (a run of capitalised words), "How many ..." a number with its unit, "When ..." a date.
Words the question already contains are never the answer ("Who is Sam Altman's successor?" is
not answered by "Altman"). The span always lies inside the sentence, so it is as verified as the
quote; when nothing fits, there is no short answer and the quote stands alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from index.lexical import STOPWORDS

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_DATE = re.compile(
    rf"\b(?:{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?|\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}(?:,?\s+\d{{4}})?"
    rf"|{_MONTH}\s+\d{{4}}|(?:1[89]|20)\d\d)\b"
)
# A number, optionally with a currency sign before it and a scale or unit word after it.
_QUANTITY = re.compile(
    r"[$€£¥]?\d[\d,.]*(?:\s?%|\s+(?:percent|per cent|million|billion|trillion|thousand|hundred)\b)?"
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


def _in_question(text: str, question: str) -> bool:
    words = [w for w in re.findall(r"[\w']+", _fold(text)) if w not in STOPWORDS]
    q = set(re.findall(r"[\w']+", _fold(question)))
    return bool(words) and all(w in q or w.removesuffix("'s") in q for w in words)


def short_answer(question: str, form: str, sentence: str) -> Span | None:
    """The span of `sentence` that answers a question of `form` (see `qa.features.FORMS`)."""
    if form in ("yes_no", "other"):
        return None
    if form == "when":
        pattern = _DATE
    elif form == "quantity":
        pattern = _QUANTITY
    else:  # who, where, what/which: a name
        pattern = _NAME
    for match in pattern.finditer(sentence):
        text = match.group(0).rstrip(".,;:’'\"")
        start = match.start()
        if form in ("who", "where", "what"):
            words = text.split()
            # A capitalised function word starting the sentence ("The", "In") is not a name.
            while words and words[0].lower() in STOPWORDS:
                words = words[1:]
            text = " ".join(words)
            if not text:
                continue
            start = sentence.find(text, match.start())
            if start == 0 and len(words) == 1:
                continue  # one capitalised word opening the sentence: as often "Another" as a name
        if form == "quantity":
            # Keep the unit word only when it is not a function word ("12 of the ...").
            words = text.split()
            if len(words) > 1 and words[-1].lower() in STOPWORDS:
                text = " ".join(words[:-1])
        if not text or _in_question(text, question):
            continue
        return Span(text, start, start + len(text))
    return None
