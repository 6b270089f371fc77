"""Sources named in a question, matched against the sources of the indexed articles.

News questions often name where something was reported ("according to TechCrunch", "as
reported by both The Verge and Fortune"). A source is article metadata: it never has to
occur in a passage's text. This module finds those mentions by matching the question against
the `source` field of the indexed articles, so that retrieval can favour those articles, the
answer can quote one sentence from each, and the name counts as found when checking whether
the retrieved articles cover what the question is about.

Feeds often publish long source names ("Cnbc | World Business News Leader", "FOX News -
Health", "The Roar | Sports Writers Blog"); a question says "CNBC", "Fox News" or "The Roar".
`source_aliases` derives the short forms from the name itself (the part before " | ", " - "
or ": ", with and without a leading "The"). Nothing here lists particular publications.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Separators between a publication's name and a section or tagline in feed source names.
_SEPARATORS = re.compile(r"\s+[|\-–—:]\s+|:\s+")
_MIN_ALIAS_CHARS = 3


@dataclass(frozen=True)
class SourceMention:
    """`question[start:end]` names the indexed source `source`."""

    source: str
    start: int
    end: int


def source_aliases(source: str) -> list[str]:
    """The ways a question may name `source`, longest first.

    >>> source_aliases("The Roar | Sports Writers Blog")
    ['The Roar | Sports Writers Blog', 'Roar | Sports Writers Blog', 'Sports Writers Blog', 'The Roar', 'Roar']
    """
    name = " ".join(source.split())
    forms = {name}
    parts = [p.strip() for p in _SEPARATORS.split(name) if p.strip()]
    forms.update(parts)
    for form in list(forms):
        if form.lower().startswith("the "):
            forms.add(form[4:])
    # Very short forms only as written in capitals ("RT", "AP"), never a short word.
    kept = [f for f in forms if len(f) >= _MIN_ALIAS_CHARS or (len(f) >= 2 and f.isupper())]
    return sorted(kept, key=lambda f: (-len(f), f))


class SourceCatalog:
    """Finds mentions of known sources in questions.

    Matching ignores case, but a mention must start with a capital letter or digit as written
    in the question (so "The Age" matches "The Age" and "the Age", never "the age of").
    """

    def __init__(self, sources: Iterable[str]):
        self.sources = sorted({s for s in sources if s and s.strip()})
        alias_to_sources: dict[str, set[str]] = {}
        for source in self.sources:
            for alias in source_aliases(source):
                alias_to_sources.setdefault(alias.lower(), set()).add(source)
        self._aliases = alias_to_sources
        ordered = sorted(alias_to_sources, key=len, reverse=True)
        self._pattern = (
            re.compile(r"(?<![\w])(?:" + "|".join(re.escape(a) for a in ordered) + r")(?![\w])", re.IGNORECASE)
            if ordered
            else None
        )

    def mentions(self, question: str) -> list[SourceMention]:
        """Non-overlapping source mentions in `question`, in order (longest alias wins).

        An alias shared by several sources ("FOX News" for "FOX News - Health" and "FOX News
        - Lifestyle") yields one mention per source, at the same place.
        """
        if self._pattern is None:
            return []
        found: list[SourceMention] = []
        for match in self._pattern.finditer(question):
            text = match.group(0)
            first = text[4:] if text.lower().startswith("the ") else text
            if not first[:1].isupper() and not first[:1].isdigit():
                continue
            if len(text) < _MIN_ALIAS_CHARS and not text.isupper():
                continue  # "RT" names the outlet; "rt" or "Rt" does not
            for source in sorted(self._aliases[text.lower()]):
                found.append(SourceMention(source, match.start(), match.end()))
        return found

    def named_sources(self, question: str) -> tuple[str, ...]:
        """The indexed sources the question names, in order of first mention."""
        return tuple(dict.fromkeys(m.source for m in self.mentions(question)))

    def strip(self, question: str) -> str:
        """The question with source mentions blanked out (for matching names in the text)."""
        chars = list(question)
        for mention in self.mentions(question):
            chars[mention.start : mention.end] = " " * (mention.end - mention.start)
        return "".join(chars)
