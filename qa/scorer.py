"""The learned answer scorer: P(sentence answers the question) and P(the articles answer it).

Trained by `training/train_answer_scorer.py` on the fitting part of the MultiHop-RAG questions
and our own training questions (never on the questions numbers are reported on), shipped inside
the package as `qa/weights/answer_scorer.json` (about 1 MB; its SHA-256 is checked by a test):

- the sentence model (`BlendModel`): an ensemble of one-hidden-layer networks (`DenseModel`)
  and gradient-boosted trees trained with monotonic constraints (`TreeModel`), their logits
  averaged, over `qa.features.FEATURES` and `SENTENCE_TYPE_INPUTS` (whether the sentence
  brings the kind of answer the question wants: `sentence_inputs`), then Platt scaling fitted
  on out-of-fold predictions, so its output is a calibrated probability that the sentence
  answers the question (reliability table in docs/EVALUATION.md);
- optionally, a second stage (`Reranker`, used when the weights have one; the shipped ones do
  not, training/README.md says why): the cross-encoder of `qa.cross_encoder` reads the sentence
  model's best k candidates with the question, and a logistic combiner fitted on out-of-fold
  scores joins both into the calibrated probability;
- the answer-type model (`qa.answer_type`): P(the question wants a name / count / date /
  something else), from the vector of the question's opening (its whole vector in older
  weights). Embedders without span vectors encode the opening as a text of its own, which
  is not the vector the model was trained on: the bundled model always gives span vectors;
- the answerability model: logistic regression over question-level features (the best
  sentence probabilities, whether the best sentence brings new material of the kind the
  question wants, how much of the question's names the retrieved articles mention, whether
  the sources it names were found); the answerer abstains
  below `threshold`, chosen on the fitting data for a false-abstention rate of at most 8% (a
  margin under the 10% target).

Apart from the cross-encoder's transformer passes, inference is a few matrix products in numpy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from articleqa.qa.answer_type import ANSWER_TYPES, AnswerTypeModel
from articleqa.qa.coverage import missing_names
from articleqa.qa.cross_encoder import CrossEncoder, pair_text, shared_cross_encoder
from articleqa.qa.features import (
    FEATURES,
    FORMS,
    OPENING_ROW,
    QUESTION_ROW,
    Candidate,
    DocumentFrequencySource,
    Question,
    SentenceVectorSource,
    analyse,
    candidates,
    features,
    linked,
    question_vectors,
    sentence_vectors,
)
from articleqa.qa.metadata import SourceCatalog
from articleqa.qa.models import Passage
from articleqa.qa.weights import file_sha256, shipped

WEIGHTS_FILE = "answer_scorer.json"

ANSWERABILITY_FEATURES: tuple[str, ...] = (
    "top_p",
    "logit_top_p",
    "second_article_p",
    "mean_top3_p",
    "max_cos_question",
    "max_overlap",
    "top_overlap_window",
    "top_year_agrees",
    "top_slot_filled",
    "filled_top_p",
    "type_name",
    "type_count",
    "type_date",
    "terms_in_passages",
    "terms_in_top_article",
    "name_coverage",
    "missing_names",
    "any_source_named",
    "named_sources_retrieved",
    *(f"form_{f}" for f in FORMS),
)


UNTRAINED: dict[str, Any] = {}
"""Pass as `weights` to get features without a model (what the training script does)."""


class ScorerWeightsError(RuntimeError):
    """The weights file is missing, unreadable, or does not match the features of this code."""


def weights_path() -> Path:
    return shipped(WEIGHTS_FILE)


def weights_sha256(path: Path | None = None) -> str:
    return file_sha256(path or weights_path())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -40, 40)))


class _PlattScaled:
    """`proba(x) = sigmoid(a * logit(x) + b)` for a model with `logit` and `platt = (a, b)`."""

    platt: tuple[float, float]

    def logit(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def proba(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0, dtype=np.float32)
        a, b = self.platt
        return _sigmoid(a * self.logit(x) + b).astype(np.float32)


@dataclass(frozen=True)
class DenseModel(_PlattScaled):
    """Standardise, then one or more stacks of dense layers (ReLU between) whose output logits
    are averaged (an ensemble of networks trained from different seeds is steadier than one),
    then a logistic output with Platt scaling `sigmoid(a * logit + b)`."""

    mean: np.ndarray
    scale: np.ndarray
    members: tuple[tuple[tuple[np.ndarray, np.ndarray], ...], ...]
    platt: tuple[float, float] = (1.0, 0.0)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DenseModel:
        def stack(layers: list[dict[str, Any]]) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
            return tuple(
                (np.asarray(layer["weight"], dtype=np.float32), np.asarray(layer["bias"], dtype=np.float32))
                for layer in layers
            )

        return cls(
            mean=np.asarray(data["mean"], dtype=np.float32),
            scale=np.asarray(data["scale"], dtype=np.float32),
            members=tuple(stack(m) for m in data["members"]),
            platt=tuple(data.get("platt", (1.0, 0.0))),  # type: ignore[arg-type]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": [round(float(v), 6) for v in self.mean],
            "scale": [round(float(v), 6) for v in self.scale],
            "members": [
                [{"weight": np.round(w, 6).tolist(), "bias": np.round(b, 6).tolist()} for w, b in layers]
                for layers in self.members
            ],
            "platt": [round(float(v), 6) for v in self.platt],
        }

    def logit(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float32) - self.mean) / self.scale
        total = np.zeros(len(z), dtype=np.float32)
        for layers in self.members:
            h = z
            for i, (w, b) in enumerate(layers):
                h = h @ w + b
                if i < len(layers) - 1:
                    h = np.maximum(h, 0.0)
            total += h[:, 0]
        return total / len(self.members)


@dataclass(frozen=True)
class TreeModel(_PlattScaled):
    """Gradient-boosted decision trees (scikit-learn's HistGradientBoostingClassifier, exported
    by the training script): the logit is `baseline` plus, per tree, the value of the leaf the
    row reaches (`x[feature] <= threshold` goes left), then Platt scaling as in DenseModel.
    Trained with monotonic constraints (`MONOTONIC_INCREASING` / `MONOTONIC_DECREASING` in
    `training/train_answer_scorer.py`): more of the question in a sentence never lowers its
    score."""

    n_inputs: int
    baseline: float
    # Per tree: node arrays feature, threshold, left, right, value, and is_leaf (1 for a leaf).
    trees: tuple[dict[str, np.ndarray], ...]
    platt: tuple[float, float] = (1.0, 0.0)

    KIND = "trees"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TreeModel:
        types = {"feature": np.int64, "threshold": np.float64, "left": np.int64, "right": np.int64}
        trees = tuple(
            {
                **{k: np.asarray(t[k], dtype=dtype) for k, dtype in types.items()},
                "value": np.asarray(t["value"], dtype=np.float64),
                "is_leaf": np.asarray(t["is_leaf"], dtype=bool),
            }
            for t in data["trees"]
        )
        return cls(int(data["n_inputs"]), float(data["baseline"]), trees, tuple(data.get("platt", (1.0, 0.0))))  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.KIND,
            "n_inputs": self.n_inputs,
            "baseline": round(self.baseline, 8),
            "trees": [
                {
                    "feature": t["feature"].tolist(),
                    "threshold": [float(v) for v in t["threshold"]],
                    "left": t["left"].tolist(),
                    "right": t["right"].tolist(),
                    "value": [round(float(v), 8) for v in t["value"]],
                    "is_leaf": t["is_leaf"].astype(int).tolist(),
                }
                for t in self.trees
            ],
            "platt": [round(float(v), 6) for v in self.platt],
        }

    @cached_property
    def _packed(self) -> dict[str, np.ndarray]:
        """Every tree's nodes in one flat array per field, tree i's node j at i * width + j
        (width: the most nodes of a tree), so that all trees take a step down at once with
        flat `take`s; `left` and `right` hold flat indices too, and a leaf (or padding) points
        to itself. `start` is each tree's root."""
        width = max(len(t["value"]) for t in self.trees)
        shape = (len(self.trees), width)
        start = np.arange(len(self.trees)) * width
        packed = {
            "feature": np.zeros(shape, np.int64),
            "threshold": np.zeros(shape, np.float64),
            "left": np.tile(np.arange(width), (len(self.trees), 1)),
            "right": np.tile(np.arange(width), (len(self.trees), 1)),
            "value": np.zeros(shape, np.float64),
        }
        depth = 0
        for i, t in enumerate(self.trees):
            inner = ~t["is_leaf"]
            n = len(t["value"])
            packed["feature"][i, :n] = t["feature"]
            packed["threshold"][i, :n] = t["threshold"]
            packed["left"][i, :n][inner] = t["left"][inner]
            packed["right"][i, :n][inner] = t["right"][inner]
            packed["value"][i, :n] = t["value"]
            depth = max(depth, _tree_depth(t))
        packed["left"] += start[:, None]
        packed["right"] += start[:, None]
        flat = {name: array.ravel() for name, array in packed.items()}
        flat["start"] = start
        flat["depth"] = np.array(depth)
        return flat

    def logit(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64)
        if not self.trees:
            return np.full(len(x), self.baseline)
        t = self._packed
        row_start = (np.arange(len(x)) * x.shape[1])[:, None]  # row r's features in x.ravel()
        values = x.ravel()
        node = np.tile(t["start"], (len(x), 1))  # (rows, trees): every row at every root
        for _ in range(int(t["depth"])):
            left = values.take(row_start + t["feature"].take(node)) <= t["threshold"].take(node)
            stepped = np.where(left, t["left"].take(node), t["right"].take(node))
            if np.array_equal(stepped, node):  # every row is at a leaf of every tree
                break
            node = stepped
        return self.baseline + t["value"].take(node).sum(axis=1)


@dataclass(frozen=True)
class BlendModel(_PlattScaled):
    """The mean of its members' logits (each without its own Platt scaling), then Platt scaling."""

    members: tuple[DenseModel | TreeModel, ...]
    platt: tuple[float, float] = (1.0, 0.0)

    KIND = "blend"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BlendModel:
        return cls(tuple(sentence_model_from_json(m) for m in data["members"]), tuple(data.get("platt", (1.0, 0.0))))  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.KIND,
            "members": [m.to_json() for m in self.members],
            "platt": [round(float(v), 6) for v in self.platt],
        }

    def logit(self, x: np.ndarray) -> np.ndarray:
        return np.mean([m.logit(x) for m in self.members], axis=0)


def _tree_depth(tree: dict[str, np.ndarray]) -> int:
    """The most splits from the root to a leaf."""
    depth, frontier = 0, [0]
    while True:
        frontier = [c for n in frontier if not tree["is_leaf"][n] for c in (tree["left"][n], tree["right"][n])]
        if not frontier:
            return depth
        depth += 1


SentenceModel = DenseModel | TreeModel | BlendModel


def sentence_model_from_json(data: dict[str, Any]) -> SentenceModel:
    """The sentence model of a weights file: by its `kind` (trees, a blend), else dense layers."""
    kind = data.get("kind")
    if kind == TreeModel.KIND:
        return TreeModel.from_json(data)
    if kind == BlendModel.KIND:
        return BlendModel.from_json(data)
    return DenseModel.from_json(data)


def model_inputs(model: SentenceModel) -> int:
    """How many input columns `model` reads."""
    if isinstance(model, BlendModel):
        counts = {model_inputs(m) for m in model.members}
        return counts.pop() if len(counts) == 1 else -1  # members that disagree fit no input
    return model.n_inputs if isinstance(model, TreeModel) else len(model.mean)


@dataclass
class QuestionScores:
    """Everything scored for one question: its analysis, candidates, features, probabilities."""

    question: Question
    candidates: list[Candidate]
    features: np.ndarray
    proba: np.ndarray  # P(sentence answers the question), per candidate
    vectors: np.ndarray  # sentence vectors, per candidate
    passages: list[Passage]
    missing_names: list[str]
    names_total: int
    # The cross-encoder's logit for the candidates it read (the feature model's best k), NaN
    # for the others; None when no cross-encoder ran.
    cross: np.ndarray | None = None
    question_vector: np.ndarray | None = None  # the question's unit vector (QUESTION_ROW of question_vectors)
    opening_vector: np.ndarray | None = None  # its opening's (OPENING_ROW)
    answer_types: np.ndarray | None = None  # P(each of ANSWER_TYPES) for the question, when a model gave it

    def order(self) -> list[int]:
        """Candidate indices best first (ties: retrieval rank, then text order)."""
        return sorted(range(len(self.candidates)), key=lambda j: (-self.proba[j], self.candidates[j].rank, j))


SENTENCE_TYPE_INPUTS: tuple[str, ...] = ("slot_filled", "type_name", "type_count", "type_date")
"""What the sentence model reads after `qa.features.FEATURES`: whether the candidate brings new
material of the kind the question wants (`slot_filled`), and the question's P(name / count /
date) (`qa.answer_type`)."""


def sentence_inputs(x: np.ndarray, answer_types: np.ndarray) -> np.ndarray:
    """The sentence model's input rows: the candidates' features (`x`), then
    SENTENCE_TYPE_INPUTS for the question's answer-type probabilities."""
    p = np.asarray(answer_types, dtype=np.float32)
    types = np.tile(p[[ANSWER_TYPES.index(k) for k in ("name", "count", "date")]], (len(x), 1))
    return np.hstack([x, slot_filled(x, p)[:, None], types]).astype(np.float32)


def slot_filled(x: np.ndarray, answer_types: np.ndarray) -> np.ndarray:
    """Per candidate (rows of feature matrix `x`), the chance that it brings new material of
    the kind the question wants: P(name) * [a new name] + P(count) * [a new number] +
    P(date) * [a new date] + P(other) (`qa.answer_type`)."""
    p = dict(zip(ANSWER_TYPES, (float(v) for v in answer_types)))
    return (
        p["name"] * (x[:, FEATURES.index("new_names")] > 0)
        + p["count"] * x[:, FEATURES.index("new_numbers")]
        + p["date"] * x[:, FEATURES.index("new_date")]
        + p["other"]
    ).astype(np.float32)


def answerability_features(scores: QuestionScores) -> np.ndarray:
    """The question-level feature row (ANSWERABILITY_FEATURES) for the answerability model."""
    col = {name: i for i, name in enumerate(ANSWERABILITY_FEATURES)}
    row = np.zeros(len(ANSWERABILITY_FEATURES), dtype=np.float32)
    p = scores.proba
    q = scores.question
    if len(p):
        order = scores.order()
        top = order[0]
        row[col["top_p"]] = p[top]
        row[col["logit_top_p"]] = math.log(max(p[top], 1e-6) / max(1 - p[top], 1e-6)) / 10
        top_article = scores.candidates[top].passage.article_id
        row[col["second_article_p"]] = max(
            (p[j] for j in order if scores.candidates[j].passage.article_id != top_article), default=0.0
        )
        row[col["mean_top3_p"]] = float(np.mean(p[order[:3]]))
        row[col["max_cos_question"]] = float(scores.features[:, FEATURES.index("cos_question")].max())
        row[col["max_overlap"]] = float(scores.features[:, FEATURES.index("overlap")].max())
        row[col["top_overlap_window"]] = float(scores.features[top, FEATURES.index("overlap_window")])
        row[col["top_year_agrees"]] = float(scores.features[top, FEATURES.index("year_agrees")])
        if scores.answer_types is not None:
            filled = slot_filled(scores.features, scores.answer_types)
            row[col["top_slot_filled"]] = filled[top]
            row[col["filled_top_p"]] = float(np.max(p * filled))
            for kind, value in zip(ANSWER_TYPES, scores.answer_types):
                if kind != "other":
                    row[col[f"type_{kind}"]] = value
        # What the question asks about that no retrieved sentence mentions ("weigh", "succeeded",
        # "final score"): a question about a detail the articles do not give.
        terms = set(q.terms)
        if terms:
            everywhere = set().union(*(c.terms for c in scores.candidates))
            in_top = set().union(*(c.terms for c in scores.candidates if c.passage.article_id == top_article))
            row[col["terms_in_passages"]] = len(terms & everywhere) / len(terms)
            row[col["terms_in_top_article"]] = len(terms & in_top) / len(terms)
        else:
            row[col["terms_in_passages"]] = row[col["terms_in_top_article"]] = 1.0
    missing, names_total = len(scores.missing_names), scores.names_total
    row[col["name_coverage"]] = 1.0 - missing / names_total if names_total else 1.0
    row[col["missing_names"]] = min(missing, 4) / 4
    row[col["any_source_named"]] = float(bool(q.sources))
    if q.sources:
        retrieved = {ps.source for ps in scores.passages}
        row[col["named_sources_retrieved"]] = sum(s in retrieved for s in q.sources) / len(q.sources)
    else:
        row[col["named_sources_retrieved"]] = 1.0
    row[col[f"form_{q.form}"]] = 1.0
    return row


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Reranker:
    """The second stage: the cross-encoder reads the feature model's best `k` candidates, and a
    logistic combiner, fitted on out-of-fold scores, turns both into the calibrated probability

        P = sigmoid(a * logit(p_features) + b * cross_logit * read + c * read + d)

    (`read` is 1 for the candidates the cross-encoder read). `cross_encoder_sha256` ties the
    combiner to the cross-encoder file it was fitted with."""

    k: int
    coef: tuple[float, float, float]
    bias: float
    cross_encoder_sha256: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reranker:
        return cls(
            int(data["k"]),
            tuple(float(c) for c in data["coef"]),
            float(data["bias"]),  # type: ignore[arg-type]
            str(data["cross_encoder_sha256"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "coef": [round(c, 6) for c in self.coef],
            "bias": round(self.bias, 6),
            "cross_encoder_sha256": self.cross_encoder_sha256,
        }

    def combine(self, proba: np.ndarray, cross: np.ndarray) -> np.ndarray:
        read = np.isfinite(cross)
        a, b, c = self.coef
        z = a * _logit(proba) + b * np.where(read, cross, 0.0) + c * read + self.bias
        return _sigmoid(z).astype(np.float32)


class AnswerScorer:
    """Scores the sentences of retrieved passages and the answerability of a question.

    Args:
        embeddings: The bundled embedding model: `encode(list[str]) -> unit vectors`, and
            `encode_with_spans` where it has `supports_spans`.
        sentence_vectors: Stored sentence vectors of chunks (None: encode sentences per question).
        weights: The trained weights (default: the ones shipped in the package).
        document_frequencies: Corpus statistics of terms (None: the candidates stand in).
        cross_encoder: The second stage's model, when the weights have a `reranker` (default:
            `qa/weights/cross_encoder.safetensors` on the bundled model).
    """

    def __init__(
        self,
        embeddings: Any,
        sentence_vectors: SentenceVectorSource | None = None,
        weights: dict[str, Any] | None = None,
        document_frequencies: DocumentFrequencySource | None = None,
        cross_encoder: CrossEncoder | None = None,
    ):
        self.embeddings = embeddings
        self.sentence_vectors = sentence_vectors
        self.document_frequencies = document_frequencies
        self.weights = weights if weights is not None else load_weights()
        self.reranker: Reranker | None = None
        self.cross_encoder: CrossEncoder | None = None
        self.answer_type_model: AnswerTypeModel | None = None
        if self.weights is UNTRAINED:  # training: features only, every probability 0
            self.sentence_model = self.answerability_model = None
            self.threshold = self.multi_article_threshold = 0.0
            return
        if tuple(self.weights.get("features", ())) != FEATURES:
            raise ScorerWeightsError(
                "the answer scorer's weights were trained on other features than this code computes; "
                "retrain them: python -m training.train_answer_scorer"
            )
        if tuple(self.weights.get("answerability_features", ())) != ANSWERABILITY_FEATURES:
            raise ScorerWeightsError(
                "the answerability weights do not match ANSWERABILITY_FEATURES; retrain them: "
                "python -m training.train_answer_scorer"
            )
        self.sentence_model: SentenceModel | None = sentence_model_from_json(self.weights["sentence_model"])
        self.answerability_model: DenseModel | None = DenseModel.from_json(self.weights["answerability_model"])
        if "answer_type_model" not in self.weights:
            raise ScorerWeightsError(
                "the answer scorer's weights have no answer-type model (older weights); retrain them: "
                "python -m training.train_answer_scorer"
            )
        try:
            self.answer_type_model = AnswerTypeModel.from_json(self.weights["answer_type_model"])
        except ValueError as exc:
            raise ScorerWeightsError(f"{exc}; retrain them: python -m training.train_answer_scorer") from None
        if model_inputs(self.sentence_model) != len(FEATURES) + len(SENTENCE_TYPE_INPUTS):
            raise ScorerWeightsError(
                f"the sentence model reads {model_inputs(self.sentence_model)} inputs, this code gives it "
                f"{len(FEATURES) + len(SENTENCE_TYPE_INPUTS)} (the features and {', '.join(SENTENCE_TYPE_INPUTS)}); "
                "retrain them: python -m training.train_answer_scorer"
            )
        self.threshold = float(self.weights["threshold"])
        self.multi_article_threshold = float(self.weights["multi_article_threshold"])
        if self.weights.get("reranker"):
            self.reranker = Reranker.from_json(self.weights["reranker"])
            self.cross_encoder = cross_encoder or default_cross_encoder(embeddings)
            if self.cross_encoder.sha256 != self.reranker.cross_encoder_sha256:
                raise ScorerWeightsError(
                    f"the cross-encoder at {self.cross_encoder.weights} is not the one the answer scorer was "
                    "trained with (SHA-256 differs); reinstall the package or retrain both (training/README.md)"
                )

    def question_vectors(self, question: str) -> np.ndarray:
        """The question's vector (row 0) and its clauses' (rows 1..), from one encode."""
        return question_vectors(analyse(question), self.embeddings)

    def featurise(
        self,
        question: str,
        passages: Sequence[Passage],
        catalog: SourceCatalog | None = None,
        encoded: np.ndarray | None = None,
        keep: Callable[[Candidate], bool] | None = None,
    ) -> QuestionScores:
        """Analyse `question`, featurise every candidate sentence of `passages`, score them.

        `encoded`: `question_vectors(question)` if the caller already has it. `keep` (training
        only): score just the candidates it accepts, as if the others were not in the passages
        (a near miss with the answering sentences cut out, `training.collect`).
        """
        q = analyse(question, catalog)
        cands = candidates(passages, q)
        if keep is not None:
            cands = linked([c for c in cands if keep(c)])
        text_vecs = encoded if encoded is not None else question_vectors(q, self.embeddings)
        sent_vecs = sentence_vectors(cands, self.embeddings, self.sentence_vectors)
        corpus = self.document_frequencies(q.terms) if self.document_frequencies and q.terms else None
        x = features(q, cands, text_vecs, sent_vecs, corpus)
        missing, total = missing_names(question, passages, catalog)
        question_vector = np.asarray(text_vecs[QUESTION_ROW], dtype=np.float32)
        opening_vector = np.asarray(text_vecs[OPENING_ROW], dtype=np.float32)
        answer_types = None
        if self.answer_type_model is not None:
            read = opening_vector if self.answer_type_model.input == "opening" else question_vector
            answer_types = self.answer_type_model.proba(read)[0]
        if self.sentence_model is not None and answer_types is not None:
            proba = self.sentence_model.proba(sentence_inputs(x, answer_types))
        else:
            proba = np.zeros(len(x), np.float32)
        scores = QuestionScores(q, cands, x, proba, sent_vecs, list(passages), missing, total)
        scores.question_vector = question_vector
        scores.opening_vector = opening_vector
        scores.answer_types = answer_types
        if self.reranker is not None and self.cross_encoder is not None and len(cands):
            read = scores.order()[: self.reranker.k]
            cross = np.full(len(cands), np.nan, dtype=np.float32)
            cross[read] = self.cross_encoder.logits(question, [pair_text(cands[j]) for j in read])
            scores.cross = cross
            scores.proba = self.reranker.combine(proba, cross)
        return scores

    def answerability(self, scores: QuestionScores) -> float:
        """Calibrated P(the retrieved articles answer the question)."""
        if self.answerability_model is None:
            return 0.0
        return float(self.answerability_model.proba(answerability_features(scores)[None, :])[0])


def default_cross_encoder(embeddings: Any) -> CrossEncoder:
    """The shipped cross-encoder on the bundled model, with the embedder's backend and cache
    (one per process and setting: the model loads once)."""
    return shared_cross_encoder(
        getattr(embeddings, "requested_backend", "auto"), getattr(embeddings, "cache_dir", None)
    )


def load_weights(path: Path | None = None) -> dict[str, Any]:
    """The trained weights (JSON), by default the ones shipped in the package."""
    path = path or weights_path()
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScorerWeightsError(
            f"cannot read the answer scorer's weights at {path}: {exc}. Reinstall the package, or "
            "retrain them: python -m training.train_answer_scorer"
        ) from None
