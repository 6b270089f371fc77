"""Words of a question or sentence: tokens, content terms (Snowball-stemmed), names, numbers.

Shared by the answer scorer's features and the coverage check, so that "deploying" matches
"deployed" and "Lions" matches "lion" the same way everywhere. Stemming is Martin Porter's
algorithm from PyStemmer (the Snowball project's C implementation), not a suffix list of our
own: the same algorithm as SQLite FTS5's `porter` tokenizer, so a question's terms can be
looked up in the lexical index's vocabulary (corpus document frequencies).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import Stemmer

from articleqa.index.text import STOPWORDS

TOKEN = re.compile(r"[^\W_]+(?:['’.,\-][^\W_]+)*", re.UNICODE)
_NUMBER = re.compile(r"^\d[\d,.:]*$")
_YEAR = re.compile(r"(?<!\d)(?:1[89]|20)\d\d(?!\d)")
# Numbers news writes out in words (style guides spell out one to nine, and round amounts:
# "five girls", "two dozen", "hundreds"). English numerals, not a list tuned to any question;
# "one" is left out because it is far more often a pronoun ("one of the ...") than a count.
NUMBER_WORDS = frozenset(
    "two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred "
    "hundreds thousand thousands million millions billion billions trillion dozen dozens".split()
)
# Calendar words: capitalised in English, yet dates, not names ("In late December, ..." brings a
# date to a "Who ...?" question, not a name). A closed class: months, their abbreviations, weekdays.
CALENDAR_WORDS = frozenset(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec "
    "monday tuesday wednesday thursday friday saturday sunday".split()
)
_STEMMER = Stemmer.Stemmer("porter")
_POSSESSIVE = re.compile(r"['’]s$")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Porter stem of one word; case and a possessive 's are folded."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    return _STEMMER.stemWord(w.strip("'.,-"))


def tokens(text: str) -> list[str]:
    """Words and numbers as written ("U.S.", "30,000", "Bankman-Fried" stay whole)."""
    return TOKEN.findall(text)


def content_terms(text: str) -> list[str]:
    """Stemmed content words (stopwords and single letters dropped), in order, unique."""
    return terms_of(tokens(text))


def terms_of(words: Iterable[str]) -> list[str]:
    """`content_terms` of text already split by `tokens`."""
    seen: dict[str, None] = {}
    for token in words:
        low = token.lower().replace("’", "'").rstrip(".,")
        if low in STOPWORDS or (len(low) < 2 and not low.isdigit()):
            continue
        seen.setdefault(stem(low), None)
    return list(seen)


def is_number(token: str) -> bool:
    """Digits ("30,000", "2:05:45")."""
    return bool(_NUMBER.match(token))


@lru_cache(maxsize=65536)
def is_count(token: str) -> bool:
    """Digits or a number written as a word ("five", "twenty-one", "dozens")."""
    if is_number(token):
        return True
    parts = token.lower().split("-")
    return all(part in NUMBER_WORDS or (part == "one" and len(parts) > 1) for part in parts)


def capitalised_words(text: str) -> list[str]:
    """Capitalised tokens that are not the sentence's first word (names, mostly), without a
    possessive 's ("NBA's" -> "NBA"); months and weekdays are dates, not names."""
    words = [_POSSESSIVE.sub("", w) for w in tokens(text)]
    return [
        w
        for i, w in enumerate(words)
        if i > 0 and w[:1].isupper() and w.lower() not in STOPWORDS and w.lower().rstrip(".") not in CALENDAR_WORDS
    ]


def years(text: str) -> frozenset[str]:
    """The years (1800-2099) written in `text`, as strings."""
    return frozenset(_YEAR.findall(text))


def has_year(text: str) -> bool:
    return bool(_YEAR.search(text))
