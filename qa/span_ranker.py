"""Which span of the quoted sentence is the short answer: a learned choice among `qa.spans`' candidates.

`qa.spans.candidates` lists the names, numbers or dates of a sentence that could answer the
question; the extractor alone takes the first. The span ranker scores each candidate from
what the bundled model makes of it *in its sentence* (the mean of the span's token states in
the sentence's own pass, `encode_with_spans`), against the question's vector and its opening's
("Who was Anthony Joshua's opponent"), plus where the span sits. So in "Joshua (26-3, 23 KOs)
welcomes former title challenger Otto Wallin ...", "KOs" no longer answers that question just
by coming first.

Logistic regression, trained by `python -m training.train_span_ranker` on the fitting questions'
gold short answers (training/README.md), shipped as `qa/weights/span_ranker.json`.

Which kind of span to list for a "what"/"which" question ("In what year ...": dates) is read by
the ranker's own answer-type model (`SpanRanker.kinds`, `qa.answer_type.AnswerTypeModel` over
the question's opening), fitted by the same script on the fitting questions and on our
questions of every kind (`training/data/own-question-kinds.jsonl`). The scorer's answer-type
model, an input to the calibrated probabilities that decide abstention, is not retrained for
that: see training/README.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from articleqa.qa.answer_type import AnswerTypeModel
from articleqa.qa.spans import Span
from articleqa.qa.weights import file_sha256, shipped

WEIGHTS_FILE = "span_ranker.json"

POSITION_INPUTS: tuple[str, ...] = ("first", "position", "one_over_count", "words", "start")
"""What follows the three vector blocks (span * opening, span * question, span) in a row."""


def weights_path() -> Path:
    return shipped(WEIGHTS_FILE)


def weights_sha256(path: Path | None = None) -> str:
    return file_sha256(path or weights_path())


def span_inputs(
    spans: Sequence[Span],
    span_vectors: np.ndarray,
    sentence: str,
    question_vector: np.ndarray,
    opening_vector: np.ndarray,
) -> np.ndarray:
    """One row per candidate: span * opening, span * question, span (unit vectors, elementwise),
    then POSITION_INPUTS: first candidate, rank / (n - 1), 1 / n, words / 5, start / len(sentence)."""
    v = np.asarray(span_vectors, dtype=np.float32)
    n = len(spans)
    rank = np.arange(n, dtype=np.float32)
    position = np.stack(
        [
            rank == 0,
            rank / max(n - 1, 1),
            np.full(n, 1.0 / max(n, 1)),
            [len(s.text.split()) / 5 for s in spans],
            [s.start / max(len(sentence), 1) for s in spans],
        ],
        axis=1,
    ).astype(np.float32)
    return np.hstack([v * opening_vector, v * question_vector, v, position])


@dataclass(frozen=True)
class SpanRanker:
    """P(span is the asked short answer) = sigmoid(span_inputs @ coef + intercept)."""

    coef: np.ndarray  # (3 * dimensions + len(POSITION_INPUTS),)
    intercept: float
    training: dict[str, Any] | None = None
    kinds: AnswerTypeModel | None = None  # the kind of span a question wants (None: the scorer's)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SpanRanker:
        if tuple(data.get("position_inputs", ())) != POSITION_INPUTS:
            raise ValueError(
                f"span ranker weights for inputs {data.get('position_inputs')!r}, this code reads {POSITION_INPUTS}; "
                "retrain them: python -m training.train_span_ranker"
            )
        kinds = AnswerTypeModel.from_json(data["kind_model"]) if "kind_model" in data else None
        return cls(np.asarray(data["coef"], dtype=np.float32), float(data["intercept"]), data.get("training"), kinds)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": "logistic regression over span_inputs",
            "position_inputs": list(POSITION_INPUTS),
            "coef": np.round(self.coef, 6).tolist(),
            "intercept": round(float(self.intercept), 6),
            **({"kind_model": self.kinds.to_json()} if self.kinds is not None else {}),
            **({"training": self.training} if self.training is not None else {}),
        }

    def kind_probabilities(
        self, question_vector: np.ndarray | None, opening_vector: np.ndarray | None
    ) -> np.ndarray | None:
        """P(name, count, date, other) of the short answer the question wants, by `kinds`
        (None without it or without the vector it reads)."""
        if self.kinds is None:
            return None
        read = opening_vector if self.kinds.input == "opening" else question_vector
        return None if read is None else self.kinds.proba(read)[0]

    @classmethod
    def load(cls, path: Path | None = None) -> SpanRanker:
        """The shipped weights (or those at `path`)."""
        path = path or weights_path()
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"cannot read the span ranker's weights {path}: {exc}") from exc

    def proba(self, inputs: np.ndarray) -> np.ndarray:
        if inputs.shape[1] != len(self.coef):
            raise ValueError(f"span inputs have {inputs.shape[1]} columns, the weights {len(self.coef)}")
        return 1.0 / (1.0 + np.exp(-(inputs @ self.coef + self.intercept)))


def span_vectors(embeddings: Any, sentence: str, spans: Sequence[Span]) -> np.ndarray:
    """Each span's vector from the sentence's own pass (zeros for a span past the model's
    window: a sentence longer than `max_seq_length` tokens)."""
    whole, per_text = embeddings.encode_with_spans([sentence], [[(s.start, s.end) for s in spans]])
    got = {(int(a), int(b)): v for (a, b), v in zip(per_text[0].spans, per_text[0].vectors)}
    zeros = np.zeros(np.asarray(whole).shape[1], np.float32)
    return np.stack([got.get((s.start, s.end), zeros) for s in spans]).astype(np.float32)


def best_span(
    ranker: SpanRanker | None,
    embeddings: Any,
    spans: Sequence[Span],
    sentence: str,
    question_vector: np.ndarray | None,
    opening_vector: np.ndarray | None,
) -> Span | None:
    """The candidate the ranker rates highest (ties: the first); the first when there is no
    ranker, no question vectors, only one candidate, or the model cannot give span vectors."""
    if not spans:
        return None
    if (
        ranker is None
        or len(spans) == 1
        or question_vector is None
        or opening_vector is None
        or not getattr(embeddings, "supports_spans", False)
    ):
        return spans[0]
    inputs = span_inputs(spans, span_vectors(embeddings, sentence, spans), sentence, question_vector, opening_vector)
    return spans[int(np.argmax(ranker.proba(inputs)))]
