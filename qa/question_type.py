"""What kind of answer a question wants, and whether a sentence holds that kind of answer.

The extractive answerer cannot read; it can only rank whole sentences. A cheap but strong
signal for that ranking is the expected answer type: "How many ..." wants a number, "Who
..." a person, "When ..." a date, "Where ..." a place. These detectors are deliberately
shallow regular expressions (no tagger, no model), so they cost microseconds per sentence
and never download anything.

Anything the question already mentions does not count as an answer: "How many people were
under the rubble, 36 to 40?" is not answered by a sentence whose only number is 36.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import Enum


class QuestionType(str, Enum):
    """The expected kind of answer."""

    WHO = "who"
    WHEN = "when"
    WHERE = "where"
    QUANTITY = "quantity"  # how many / how much / how old / what number ...
    WHAT = "what"  # which / what / anything else


# Nouns after "which"/"what" that make the question a who-question ("Which judge ...").
_PERSON_NOUNS = frozenset(
    """person people man woman men women judge mayor minister president prime actor actress
    artist singer player athlete runner astronaut astronauts cosmonaut officer official
    leader politician mp senator governor king queen sultan prince princess pilot driver
    captain coach director author writer scientist researcher spokesman spokesperson
    secretary chancellor candidate winner footballer cricketer wrestler suspect militia
    general ceo founder chief emperor pope bishop doctor lawyer presenter journalist
    activist economist mathematician engineer""".split()
)
# Nouns after "which"/"what" that make it a where-question ("In which city ...").
_PLACE_NOUNS = frozenset(
    """city town village country state province region district county capital island
    islands place location area neighbourhood neighborhood street river lake mountain
    sea port airport hospital market base continent suburb municipality prison mosque
    church cathedral stadium venue park""".split()
)
# Nouns after "what"/"which" that make it a when-question ("In what year ...").
_TIME_NOUNS = frozenset("year date day month decade century season".split())
# Nouns after "what" that want a number ("What magnitude ...", "By what margin ...").
_QUANTITY_NOUNS = frozenset(
    """number percentage percent proportion magnitude margin amount score
    speed age height weight distance length cost price temperature time""".split()
)

_WORD = re.compile(r"[^\W_]+(?:['’.\-][^\W_]+)*", re.UNICODE)


def detect_question_type(question: str) -> QuestionType:
    """Guess the expected answer type from the question's wording.

    Args:
        question: A natural-language question.

    Returns:
        The `QuestionType`; `WHAT` when nothing more specific matches.
    """
    words = [w.lower() for w in _WORD.findall(question)]
    text = " ".join(words)
    # Quantity first: "how many people ... who ..." is still a number question.
    if re.search(r"\bhow (many|much|old|long|far|big|large|tall|high|fast|often)\b", text):
        return QuestionType.QUANTITY
    for i, word in enumerate(words):
        if word in ("which", "what", "whose"):
            # Look at the noun(s) right after "which"/"what" (skipping a modifier or two).
            following = words[i + 1 : i + 4]
            for noun in following:
                if noun in _TIME_NOUNS:
                    return QuestionType.WHEN
                if noun in _QUANTITY_NOUNS:
                    # "What time ..." in a race is a quantity (47.42 seconds) as well.
                    return QuestionType.QUANTITY
                if noun in _PERSON_NOUNS:
                    return QuestionType.WHO
                if noun in _PLACE_NOUNS:
                    return QuestionType.WHERE
                if noun in ("was", "is", "are", "were", "did", "does", "do", "had", "has"):
                    break
            break
        if word in ("who", "whom"):
            return QuestionType.WHO
        if word == "when":
            return QuestionType.WHEN
        if word == "where":
            return QuestionType.WHERE
    # "What was Warholm's winning time?": the head noun sits after the verb, so look for a
    # quantity noun anywhere in a what/which question.
    if any(w in _QUANTITY_NOUNS for w in words):
        return QuestionType.QUANTITY
    return QuestionType.WHAT


# ---- answer-kind detectors over a candidate sentence -------------------------------------

_MONTHS = (
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
).split()
_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_RELATIVE_DAYS = "yesterday today tomorrow tonight overnight earlier".split()
_DATE_RE = re.compile(
    r"\b(?:1[5-9]\d\d|20\d\d)s?\b"  # a year or decade
    r"|\b\d{4}-\d{2}-\d{2}\b"  # ISO date
    r"|\b\d{1,2}/\d{1,2}/\d{2,4}\b"
    r"|\b(?:last|next|this) (?:week|month|year|weekend)\b"
    r"|\b\d+ (?:days?|weeks?|months?|years?) ago\b",
    re.IGNORECASE,
)
_NUMBER_WORDS = frozenset(
    """two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
    sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty
    ninety hundred hundreds thousand thousands million millions billion billions dozen
    dozens half""".split()
)
_DIGITS = re.compile(r"\d+(?:[.,:]\d+)*")
_ROLE_NOUNS = frozenset(
    """official officials minister president spokesperson spokesman spokeswoman diplomat
    source sources police officer officers leader chief secretary ambassador mayor governor
    judge prosecutor director ceo chairman chairwoman commander head premier chancellor
    senator mp lawmaker aide adviser advisor analyst expert witness""".split()
)
_SPEECH_VERBS = frozenset(
    """said says say told tells called calls branded brands described describes claimed
    claims announced announces stated states added adds warned warns argued argues wrote
    writes tweeted confirmed confirms denied denies accused accuses dubbed labelled labeled
    blasted criticised criticized praised""".split()
)
_PLACE_RE = re.compile(r"\b(?:in|at|from|near|into|to|outside|inside)\s+(?:the\s+)?([A-Z][^\W\d_]+)")
# Capitalised words that are not names of people or places.
_NOT_NAMES = frozenset(
    """the a an i in on at of for and but or if it its this that these those he she they we
    his her their our you mr mrs ms dr""".split()
    + _MONTHS
    + _WEEKDAYS
)


def _stems(words: Iterable[str]) -> set[str]:
    return {stem(w) for w in words}


def stem(word: str) -> str:
    """A crude suffix-stripping stem, enough to match "deploy"/"deploying", "lions"/"lion".

    Args:
        word: One word; case is folded.

    Returns:
        The stem (lowercase, possessive removed).
    """
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    w = w.rstrip("'")
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if len(w) - len(suffix) >= 4 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


# ("stat" would also match "United States".)
_SPEECH_STEMS = frozenset(stem(w) for w in _SPEECH_VERBS if len(stem(w)) >= 4) - {"stat"}


def _new_names(sentence: str, question_stems: set[str]) -> list[list[str]]:
    """Runs of capitalised words (not sentence-initial function words) absent from the question."""
    runs: list[list[str]] = []
    current: list[str] = []
    for i, match in enumerate(_WORD.finditer(sentence)):
        word = match.group()
        is_name = (
            word[0].isupper()
            and word.lower() not in _NOT_NAMES
            and stem(word) not in question_stems
        )
        if is_name and i == 0 and not current:
            # A sentence-initial capital only counts if the next word is capitalised too;
            # handled by keeping it provisionally and dropping single-word initial runs below.
            current = [word, "\0initial"]
            continue
        if is_name:
            current.append(word)
        else:
            if current:
                runs.append(current)
            current = []
    if current:
        runs.append(current)
    cleaned: list[list[str]] = []
    for run in runs:
        if "\0initial" in run:
            run = [w for w in run if w != "\0initial"]
            if len(run) < 2:
                continue
        cleaned.append(run)
    return cleaned


def answer_kind_score(qtype: QuestionType, question: str, sentence: str) -> float:
    """How well `sentence` offers the kind of answer `qtype` expects, in [0, 1].

    Args:
        qtype: The question's expected answer type.
        question: The question (its own names/numbers do not count as an answer).
        sentence: A candidate sentence.

    Returns:
        1.0 for a clear match (a new number for QUANTITY, a new multi-word name for WHO, ...),
        0.5 for a weaker one, 0.0 for none.
    """
    q_words = [w.lower() for w in _WORD.findall(question)]
    q_stems = _stems(q_words)
    s_words = _WORD.findall(sentence)
    s_lower = [w.lower() for w in s_words]

    if qtype is QuestionType.QUANTITY:
        q_numbers = set(_DIGITS.findall(question))
        if any(n not in q_numbers for n in _DIGITS.findall(sentence)):
            return 1.0
        if any(w in _NUMBER_WORDS and w not in q_words for w in s_lower):
            return 1.0
        return 0.0

    if qtype is QuestionType.WHEN:
        if any(w in _MONTHS[:12] or w in _WEEKDAYS for w in s_lower if w not in q_words):
            return 1.0
        if any(m.group() not in question for m in _DATE_RE.finditer(sentence)):
            return 1.0
        if any(w in _RELATIVE_DAYS for w in s_lower):
            return 0.5
        return 0.0

    names = _new_names(sentence, q_stems)
    if qtype is QuestionType.WHO:
        if any(len(run) >= 2 for run in names):
            return 1.0
        has_role = any(w in _ROLE_NOUNS and stem(w) not in q_stems for w in s_lower)
        # Stems too, so "branding"/"calling" count like "branded"/"called".
        has_speech = any(w in _SPEECH_VERBS or stem(w) in _SPEECH_STEMS for w in s_lower)
        if has_role and has_speech:
            return 1.0
        if names or has_role:
            return 0.5
        return 0.0

    if qtype is QuestionType.WHERE:
        if any(stem(m.group(1)) not in q_stems for m in _PLACE_RE.finditer(sentence)):
            return 1.0
        return 0.5 if names else 0.0

    # WHAT / which: answers are very often a proper name or a number the question lacks.
    if names:
        return 0.5
    q_numbers = set(_DIGITS.findall(question))
    if any(n not in q_numbers for n in _DIGITS.findall(sentence)):
        return 0.5
    return 0.0
