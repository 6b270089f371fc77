"""Does the retrieved text mention what the question is about?

A question names its subject with proper nouns, years and numbers ("the 2018 Chicago
Marathon", "Super Bowl LIV", "Jeremy Hunt"). When the retrieved passages do not mention
those names, the best sentence answers some other question, however similar it sounds: the
answerer abstains. This catches questions about events the articles do not cover, which a
sentence score alone ranks as confidently as real answers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from index.lexical import STOPWORDS
from qa.models import Passage

_CAPITALISED = r"[A-Z][\w’'.&-]*"
_NUMBER = r"\d[\d,.:]*\d|\d"
_PHRASE = re.compile(rf"{_CAPITALISED}(?:\s+(?:of\s+|de\s+|the\s+)?{_CAPITALISED})*|{_NUMBER}")
_YEAR = re.compile(r"^(?:1[89]|20)\d\d$")
# Capitalised only because they start the question, or too common to name a subject.
_NOT_NAMES = STOPWORDS | {"near", "after", "before", "during", "since", "according", "following"}


def question_names(question: str) -> list[str]:
    """Proper-noun phrases, years and numbers in a question, e.g. ["Chicago Marathon", "2018"]."""
    names: list[str] = []
    for match in _PHRASE.finditer(question):
        words = match.group(0).split()
        while words and words[0].lower().strip("’'") in _NOT_NAMES:
            words = words[1:]
        phrase = re.sub(r"(’s|'s)$", "", " ".join(words)).rstrip(".,:")
        if phrase and phrase not in names:
            names.append(phrase)
    return names


def _fold(text: str) -> str:
    return " ".join(text.lower().replace("’", "'").split())


def name_coverage(question: str, passages: Sequence[Passage]) -> float:
    """Share of the question's names found in the passages (their text or title).

    A year also counts as found when a passage's article was published that year. Returns 1.0
    when the question names nothing (there is nothing to check).
    """
    names = question_names(question)
    if not names:
        return 1.0
    text = _fold(" ".join(f"{p.title} {p.text}" for p in passages))
    years = {str(p.published_at.year) for p in passages if p.published_at}
    found = 0
    for name in names:
        if _YEAR.match(name) and name in years:
            found += 1
        elif re.search(rf"(?<!\w){re.escape(_fold(name))}(?!\w)", text):
            found += 1
    return found / len(names)
