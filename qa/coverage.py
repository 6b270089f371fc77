"""Does the retrieved text mention what the question is about?

A question names its subject with proper nouns, years and numbers ("the 2018 Chicago
Marathon", "Super Bowl LIV", "Jeremy Hunt"). When the retrieved passages do not mention
those names, the best sentence answers some other question, however similar it sounds: the
answerer abstains. This catches questions about events the articles do not cover, which a
sentence score alone ranks as confidently as real answers. The share of names found is one of
the answerability model's features (`qa.scorer`), not a rule of its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from articleqa.index.text import STOPWORDS
from articleqa.qa.metadata import SourceCatalog
from articleqa.qa.models import Passage

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


def missing_names(
    question: str, passages: Sequence[Passage], catalog: SourceCatalog | None = None
) -> tuple[list[str], int]:
    """The question's names that the retrieved articles do not mention, and how many it has.

    A name counts as mentioned when it occurs in a passage's text or its article's title or
    source, or (a year) when an article was published that year. Sources the question names
    that are indexed sources (`catalog`) are metadata: they count as mentioned even when no
    passage text contains them ("according to TechCrunch").
    """
    stripped = catalog.strip(question) if catalog else question
    names = question_names(stripped)
    if not names:
        return [], 0
    text = _fold(" ".join(f"{p.title} {p.source or ''} {p.text}" for p in passages))
    years = {str(p.published_at.year) for p in passages if p.published_at}
    missing = []
    for name in names:
        if _YEAR.match(name) and name in years:
            continue
        if not re.search(rf"(?<!\w){re.escape(_fold(name))}(?!\w)", text):
            missing.append(name)
    return missing, len(names)
