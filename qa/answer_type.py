"""What kind of answer a question wants, learned from the question's vector.

"What was the name of the engineer ...?" wants a name, "How many girls died ...?" a count,
"When did ...?" a date; "What caused ...?" something else. A sentence that reports the event
but holds no new name, number or date ("an engineer was killed", "a player tested positive")
does not answer a question that wants one, however close it is in topic. The answer scorer
reads that as two sets of features (`qa.features`): the probability of each kind, and whether a
candidate sentence brings new material of that kind.

The kinds are not read off a list of question words: `AnswerTypeModel` is a multinomial
logistic regression over the question's vector (the bundled MiniLM) or, trained with
`--answer-type-input opening`, over the vector of its opening ("On what date did the": the
model's token states over that span of the question, `qa.features.opening_span`), fitted by
`training/train_answer_scorer.py` on the fitting questions' gold short answers, each labelled by
`answer_type` (the same detectors the features use), and shipped inside the scorer's weights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from articleqa.qa.text import capitalised_words, is_count, tokens, years

ANSWER_TYPES: tuple[str, ...] = ("name", "count", "date", "other")
"""The kinds of answer, in the order of `AnswerTypeModel.proba`'s columns."""
INPUTS: tuple[str, ...] = ("question", "opening")
"""What the model can read: the whole question's vector (the shipped weights), or its opening's
(`qa.features.OPENING_ROW`). The opening's vector says what is asked ("On what date did the"),
the whole question's is mostly its topic; training/README.md compares them."""

_MONTH_OR_DAY = re.compile(
    r"\b(?:January|February|March|April|May|June|July|August|September|October|November|December|"
    r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|"
    r"Sunday|yesterday|today|tomorrow|tonight)\b\.?"
)


def has_date(text: str) -> bool:
    """A year, month or weekday ("2019", "March", "on Tuesday", "yesterday")."""
    return bool(years(text)) or bool(_MONTH_OR_DAY.search(text))


def answer_type(answer: str) -> str:
    """The kind of a gold short answer: "date" (a year, month or weekday), "count" (a number,
    in digits or words), "name" (a capitalised word), else "other" ("Yes", "a suspended
    sentence")."""
    words = tokens(answer)
    if not words:
        return "other"
    if has_date(answer):
        return "date"
    if any(is_count(w) for w in words):
        return "count"
    # The first word counts here (an answer is often just a name), unlike in a sentence.
    if (words[0][:1].isupper() and words[0].lower() not in ("yes", "no")) or capitalised_words(answer):
        return "name"
    return "other"


def new_date(sentence: str, question: str) -> bool:
    """Whether `sentence` has a year, month or weekday that `question` does not."""
    q = question.lower()
    return any(y not in question for y in years(sentence)) or any(
        m.group(0).lower().rstrip(".") not in q for m in _MONTH_OR_DAY.finditer(sentence)
    )


def new_material(sentence: str, question: str) -> tuple[bool, bool, bool]:
    """Whether `sentence` brings a name, a count and a date that `question` does not have."""
    q = question.lower()
    name = any(w.lower() not in q for w in capitalised_words(sentence))
    count = any(is_count(w) and w.lower() not in q and not years(w) for w in tokens(sentence))
    return name, count, new_date(sentence, question)


@dataclass(frozen=True)
class AnswerTypeModel:
    """P(answer kind | question vector): softmax(vector @ coef.T + intercept), columns in
    ANSWER_TYPES order."""

    coef: np.ndarray  # (len(ANSWER_TYPES), dimensions)
    intercept: np.ndarray  # (len(ANSWER_TYPES),)
    input: str = "question"  # one of INPUTS

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnswerTypeModel:
        if tuple(data.get("types", ())) != ANSWER_TYPES:
            raise ValueError(f"answer-type model for {data.get('types')!r}, expected {ANSWER_TYPES}")
        kind = data.get("input", "question")  # weights before the choice read the question
        if kind not in INPUTS:
            raise ValueError(f"answer-type model reading {kind!r}, expected one of {INPUTS}")
        return cls(
            np.asarray(data["coef"], dtype=np.float32), np.asarray(data["intercept"], dtype=np.float32), input=kind
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "types": list(ANSWER_TYPES),
            "input": self.input,
            "coef": np.round(self.coef, 6).tolist(),
            "intercept": np.round(self.intercept, 6).tolist(),
        }

    def proba(self, vectors: np.ndarray) -> np.ndarray:
        """(n, len(ANSWER_TYPES)) probabilities for (n, dimensions) vectors of the model's input."""
        z = np.atleast_2d(np.asarray(vectors, dtype=np.float32)) @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
