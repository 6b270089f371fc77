"""Train the answer scorer shipped in `qa/weights/answer_scorer.json`.

Data (`TRAINING_SETS`):
- the fitting part of the MultiHop-RAG development questions
  (`tests/data/multihop-rag/questions-fit.jsonl`, see `training/split_multihop.py`) over its 609
  articles. MultiHop-RAG: Yixuan Tang and Yi Yang, COLM 2024, ODC-BY 1.0 (LICENSE-NOTE.txt
  beside the data);
- our own questions (`training/data/`, see its README): single-article questions, answerable
  and near-miss unanswerable, over the MultiHop-RAG articles and over the bundled Wikinews
  articles that tests/data/eval.jsonl does not use;
- with `--kind-questions`, for the answer-type model only, `training.collect.ANSWER_TYPE_QUESTIONS`:
  our questions of every kind of answer, with varied openings (training/data/README.md; tried,
  not shipped: training/README.md).
The MultiHop-RAG reporting part and tests/data/eval.jsonl are never read here.

What it does, all on CPU in a few minutes:

1. indexes the articles (incrementally, in `--index-dir`) and retrieves passages for every
   fitting question exactly as `articleqa ask` does;
2. labels every sentence of those passages (`training.collect`): evidence sentences and
   evidence-article sentences holding the gold answer are positives, the rest hard negatives;
3. fits the sentence model (5 small MLPs and gradient-boosted trees with monotonic
   constraints, their logits averaged; logistic regression is fitted too and kept if it
   scores better out of fold), with 5-fold cross-validation grouped by question,
   and Platt scaling on the out-of-fold predictions;
4. fits the answerability model (logistic regression) on out-of-fold sentence probabilities,
   and picks the abstention threshold on its own out-of-fold probabilities: the highest one
   whose false-abstention rate on answerable fitting questions is at most `--max-false-abstention`;
5. picks the probability above which another article's best sentence joins the answer
   (multi-source answers), maximising the F1 of cited against evidence articles;
6. writes the weights with what produced them (data hashes, seed, command, the
   reliability tables) and prints the file's SHA-256 (tests/test_scorer.py checks it).

    python -m training.train_answer_scorer            # same seed, same data: same weights
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from training.collect import ROOT, TRAINING_INDEX_DIR, TRAINING_SETS, sha256

OUT = ROOT / "qa" / "weights" / "answer_scorer.json"
# Candidates the cross-encoder reads per question: a speed setting. Each costs one transformer
# pass (about 5 ms on 2 CPU cores with bfloat16, 2-3x that without); 6 keeps a long question
# within the 100 ms p50 budget. Out-of-fold top-1 is flat from 4 to 16 within the run-to-run
# noise (about 0.01; the record lists every k).
RERANK_K = 6
FOLDS = 5
ENSEMBLE = 5  # networks in the sentence model, seeds seed .. seed+4
HIDDEN = 32  # hidden units of each network
MAX_ANSWER_ARTICLES = 4


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict]:
    """Predicted against observed frequency in equal-width probability bins."""
    rows = []
    edges = np.linspace(0, 1, bins + 1)
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        if mask.sum():
            rows.append(
                {
                    "bin": f"{lo:.1f}-{hi:.1f}",
                    "n": int(mask.sum()),
                    "predicted": round(float(p[mask].mean()), 3),
                    "observed": round(float(y[mask].mean()), 3),
                }
            )
    return rows


def _layers(model):
    if hasattr(model, "coefs_"):  # MLPClassifier
        return tuple((w.astype(np.float32), b.astype(np.float32)) for w, b in zip(model.coefs_, model.intercepts_))
    return ((model.coef_.T.astype(np.float32), model.intercept_.astype(np.float32)),)  # LogisticRegression


def dense_from(models, scaler) -> dict:
    """The shipped form of fitted sklearn models (one, or an ensemble) and their scaler."""
    from articleqa.qa.scorer import DenseModel

    models = models if isinstance(models, list) else [models]
    return DenseModel(
        scaler.mean_.astype(np.float32), scaler.scale_.astype(np.float32), tuple(_layers(m) for m in models)
    ).to_json()


class Ensemble:
    """MLPs from seeds seed..seed+n-1; predicts the mean logit (as `qa.scorer.DenseModel`)."""

    def __init__(self, n: int, seed: int):
        from sklearn.neural_network import MLPClassifier

        self.members = [
            MLPClassifier(
                hidden_layer_sizes=(HIDDEN,),
                alpha=1e-3,
                max_iter=400,
                random_state=seed + i,
                early_stopping=True,
                validation_fraction=0.1,
                n_iter_no_change=20,
            )
            for i in range(n)
        ]

    def fit(self, x, y, sample_weight=None):
        for m in self.members:
            m.fit(x, y, sample_weight=sample_weight)
        return self

    def logit(self, x):
        logits = []
        for m in self.members:
            p = np.clip(m.predict_proba(x)[:, 1], 1e-7, 1 - 1e-7)
            logits.append(np.log(p / (1 - p)))
        return np.mean(logits, axis=0)


# Inputs of the sentence model whose increase may never lower a sentence's score in the trees
# model (how much of the question the sentence, its window or its passage holds; the
# retrieval ranks; whether it brings the kind of answer asked for), and the two that may
# never raise it (the most specific question term it lacks).
MONOTONIC_INCREASING = (
    "cos_question",
    "cos_question_rel",
    "cos_clause_max",
    "cos_clause_rel",
    "overlap",
    "overlap_rel",
    "overlap_clause_max",
    "overlap_window",
    "overlap_article",
    "overlap_corpus",
    "overlap_corpus_window",
    "passage_score_rel",
    "inv_rank",
    "inv_dense_rank",
    "inv_lexical_rank",
    "year_agrees",
    "slot_filled",
)
MONOTONIC_DECREASING = ("missing_specific", "missing_specific_window")


def monotonic_constraints() -> list[int]:
    """Per sentence-model input (`qa.features.FEATURES`, then `qa.scorer.SENTENCE_TYPE_INPUTS`):
    1 increasing, -1 decreasing, 0 free."""
    from articleqa.qa.features import FEATURES
    from articleqa.qa.scorer import SENTENCE_TYPE_INPUTS

    names = (*FEATURES, *SENTENCE_TYPE_INPUTS)
    unknown = set(MONOTONIC_INCREASING + MONOTONIC_DECREASING) - set(names)
    if unknown:
        raise ValueError(f"monotonic constraints name inputs the model does not read: {sorted(unknown)}")
    return [1 if n in MONOTONIC_INCREASING else -1 if n in MONOTONIC_DECREASING else 0 for n in names]


class Trees:
    """Gradient-boosted trees with the monotonic constraints above (scikit-learn's
    HistGradientBoostingClassifier, early-stopped on a tenth of the rows); `logit` is its raw
    score, `to_model` the shipped `qa.scorer.TreeModel`."""

    def __init__(self, seed: int):
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.model = HistGradientBoostingClassifier(
            max_iter=300,
            learning_rate=0.05,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=20,
            random_state=seed,
            monotonic_cst=monotonic_constraints(),
        )

    def fit(self, x, y, sample_weight=None):
        self.model.fit(x, y, sample_weight=sample_weight)
        return self

    def logit(self, x):
        return self.model.decision_function(x)

    def to_model(self, n_inputs: int):
        from articleqa.qa.scorer import TreeModel

        # scikit-learn keeps the fitted trees and the starting score in private attributes;
        # tests/test_scorer.py checks that the exported model scores as decision_function does.
        trees = []
        for (predictor,) in self.model._predictors:  # one tree per boosting iteration (binary)
            nodes = predictor.nodes
            trees.append(
                {
                    "feature": nodes["feature_idx"].astype(np.int64),
                    "threshold": nodes["num_threshold"].astype(np.float64),
                    "left": nodes["left"].astype(np.int64),
                    "right": nodes["right"].astype(np.int64),
                    "value": nodes["value"].astype(np.float64),
                    "is_leaf": nodes["is_leaf"].astype(bool),
                }
            )
        return TreeModel(n_inputs, float(self.model._baseline_prediction.ravel()[0]), tuple(trees))


class Blend:
    """The MLP ensemble (on standardised inputs) and the trees, their logits averaged."""

    def __init__(self, seed: int):
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler()
        self.mlp = Ensemble(ENSEMBLE, seed)
        self.trees = Trees(seed)

    def fit(self, x, y, sample_weight=None):
        self.scaler.fit(x)
        self.mlp.fit(self.scaler.transform(x), y, sample_weight=sample_weight)
        self.trees.fit(x, y, sample_weight=sample_weight)
        return self

    def logit(self, x):
        return (self.mlp.logit(self.scaler.transform(x)) + self.trees.logit(x)) / 2

    def to_json(self, n_inputs: int) -> dict:
        from articleqa.qa.scorer import BlendModel

        return {
            "kind": BlendModel.KIND,
            "members": [dense_from(self.mlp.members, self.scaler), self.trees.to_model(n_inputs).to_json()],
        }


class Unscaled:
    """The identity in place of StandardScaler (trees split on the features as they are)."""

    def fit(self, x):
        self.mean_, self.scale_ = np.zeros(x.shape[1]), np.ones(x.shape[1])
        return self

    def transform(self, x):
        return x


def fit_sentence_model(x, y, groups, seed, weight, model="blend"):
    """Out-of-fold logits for `model` ("blend": `Blend`; "trees": `Trees`; "mlp": an ensemble
    of MLPs) and for logistic regression; the one with the lower out-of-fold log loss, refitted
    on all the data."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import GroupKFold
    from sklearn.preprocessing import StandardScaler

    def make(kind):
        if kind == "trees":
            return Trees(seed)
        if kind == "blend":
            return Blend(seed)
        return Ensemble(ENSEMBLE, seed) if kind == "mlp" else LogisticRegression(C=1.0, max_iter=2000)

    def scaler_for(kind):
        return Unscaled() if kind in ("trees", "blend") else StandardScaler()

    def logit(model, features):
        if isinstance(model, (Ensemble, Trees, Blend)):
            return model.logit(features)
        p = np.clip(model.predict_proba(features)[:, 1], 1e-7, 1 - 1e-7)
        return np.log(p / (1 - p))

    results = {}
    for kind in ("logistic", model):
        oof = np.zeros(len(y))
        fitted = []
        for train, test in GroupKFold(n_splits=FOLDS).split(x, y, groups):
            scaler = scaler_for(kind).fit(x[train])
            model = make(kind).fit(scaler.transform(x[train]), y[train], sample_weight=weight[train])
            fitted.append((scaler, model))
            oof[test] = logit(model, scaler.transform(x[test]))
        results[kind] = (oof, log_loss(y, 1 / (1 + np.exp(-oof)), sample_weight=weight), fitted)
        print(f"  {kind}: out-of-fold log loss {results[kind][1]:.4f}", file=sys.stderr)
    kind = min(results, key=lambda k: results[k][1])
    oof_logit = results[kind][0]
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(oof_logit[:, None], y, sample_weight=weight)
    a, b = float(platt.coef_[0, 0]), float(platt.intercept_[0])

    def fold_model(scaler, model):
        def proba(features):
            if not len(features):
                return np.zeros(0, np.float32)
            return (1 / (1 + np.exp(-(a * logit(model, scaler.transform(features)) + b)))).astype(np.float32)

        return proba

    fold_models = [fold_model(sc, m) for sc, m in results[kind][2]]
    scaler = scaler_for(kind).fit(x)
    fitted_model = make(kind).fit(scaler.transform(x), y, sample_weight=weight)
    if kind == "trees":
        weights = fitted_model.to_model(x.shape[1]).to_json()
    elif kind == "blend":
        weights = fitted_model.to_json(x.shape[1])
    else:
        weights = dense_from(fitted_model.members if kind == "mlp" else fitted_model, scaler)
    weights["platt"] = [round(a, 6), round(b, 6)]
    oof_p = 1 / (1 + np.exp(-(a * oof_logit + b)))
    return kind, weights, oof_p, {k: round(v[1], 4) for k, v in results.items()}, fold_models


def fit_type_regression(v, t, extra_v, extra_t, seed: int, grid=(1.0, 10.0, 100.0), reads="question"):
    """The regression of `qa.answer_type.AnswerTypeModel`: multinomial logistic regression from
    vectors `v` to kinds `t` (indices into ANSWER_TYPES), C from `grid` by 5-fold out-of-fold log
    loss; `extra_v`, `extra_t` join the training part of every fold and the final fit.
    Returns (the model, C, its out-of-fold log loss, the (len(v), types) out-of-fold probabilities)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import KFold

    from articleqa.qa.answer_type import ANSWER_TYPES, AnswerTypeModel

    def full(model, rows):  # probabilities for every type, 0 for a type the fold never saw
        out = np.zeros((len(rows), len(ANSWER_TYPES)))
        out[:, model.classes_] = model.predict_proba(rows)
        return out

    folds = list(KFold(n_splits=FOLDS, shuffle=True, random_state=seed).split(v))
    best = None
    for c in grid:
        oof = np.zeros((len(t), len(ANSWER_TYPES)))
        for train, test in folds:
            model = LogisticRegression(C=c, max_iter=5000).fit(
                np.vstack([v[train], extra_v]), np.concatenate([t[train], extra_t])
            )
            oof[test] = full(model, v[test])
        clipped = np.clip(oof, 1e-7, 1)  # a type a fold never saw has probability 0 there
        loss = log_loss(t, clipped / clipped.sum(axis=1, keepdims=True), labels=range(len(ANSWER_TYPES)))
        if best is None or loss < best[1]:
            best = (c, loss, oof)
    c, loss, oof = best
    final = LogisticRegression(C=c, max_iter=5000).fit(np.vstack([v, extra_v]), np.concatenate([t, extra_t]))
    coef = np.full((len(ANSWER_TYPES), v.shape[1]), 0.0)
    intercept = np.full(len(ANSWER_TYPES), -30.0)  # a type no fitting answer had: never predicted
    coef[final.classes_] = final.coef_ if len(final.classes_) > 2 else np.vstack([-final.coef_, final.coef_]) / 2
    intercept[final.classes_] = (
        final.intercept_ if len(final.classes_) > 2 else np.array([-final.intercept_[0], final.intercept_[0]]) / 2
    )
    return AnswerTypeModel(coef.astype(np.float32), intercept.astype(np.float32), input=reads), c, loss, oof


def type_record(c, loss, oof, t, extra_t) -> dict:
    """What the weights file records of a fitted answer-type regression."""
    from articleqa.qa.answer_type import ANSWER_TYPES

    return {
        "C": c,
        "out_of_fold_log_loss": round(float(loss), 4),
        "out_of_fold_accuracy": round(float(np.mean(oof.argmax(axis=1) == t)), 4),
        "answers_by_type": {kind: int(np.sum(t == i)) for i, kind in enumerate(ANSWER_TYPES)},
        "answer_type_only_by_type": {kind: int(np.sum(extra_t == i)) for i, kind in enumerate(ANSWER_TYPES)},
        "out_of_fold_recall_by_type": {
            kind: round(float(np.mean(oof[t == i].argmax(axis=1) == i)), 4) if np.any(t == i) else None
            for i, kind in enumerate(ANSWER_TYPES)
        },
    }


def fit_answer_types(examples, near_misses, seed: int, extra=None, grid=(1.0, 10.0, 100.0), reads="question"):
    """The answer-type model (`qa.answer_type`, `fit_type_regression`) on the kinds of the
    examples' gold short answers, from the question's vector (`reads="opening"`: its opening's).
    Every example's `answer_types` are set to out-of-fold probabilities (a near miss takes its
    question's); those of questions without a gold answer (unanswerable), from the model
    fitted on all. `extra`: (question vectors, gold answers) of questions that only teach this
    model (`training.collect.ANSWER_TYPE_ONLY`), in the training part of every fold. Returns
    the model and a record for the weights file."""
    from articleqa.qa.answer_type import ANSWER_TYPES, answer_type

    def vector(e):
        return type_vector(e.scores, reads)

    labelled = [e for e in examples if e.answerable and e.gold]
    v = np.vstack([vector(e) for e in labelled])
    t = np.array([ANSWER_TYPES.index(answer_type(e.gold)) for e in labelled])
    extra_v, extra_answers = extra if extra is not None else (np.zeros((0, v.shape[1])), [])
    extra_t = np.array([ANSWER_TYPES.index(answer_type(a)) for a in extra_answers], dtype=int)
    model, c, loss, oof = fit_type_regression(v, t, extra_v, extra_t, seed, grid, reads)
    by_id = {e.id: oof[i] for i, e in enumerate(labelled)}
    for e in examples + near_misses:
        p = by_id.get(e.extra.get("of", e.id))
        e.scores.answer_types = p if p is not None else model.proba(vector(e))[0]
    return model, type_record(c, loss, oof, t, extra_t)


def type_vector(scores, reads: str) -> np.ndarray:
    """The vector an answer-type model reading `reads` ("question" or "opening") takes."""
    return scores.opening_vector if reads == "opening" else scores.question_vector


def answer_type_only(data_hashes: dict[str, str], reads: str = "question", files: Sequence[Path] = ()):
    """(question or opening vectors, as `reads`; gold answers) of the answerable questions of
    `files` (`training.collect.ANSWER_TYPE_QUESTIONS` with `--kind-questions`, `ANSWER_TYPE_ONLY`'s
    with `--answer-type-questions`), vectors as the scorer computes them; their files' SHA-256
    go into `data_hashes`."""
    from articleqa.index.embeddings import get_embeddings
    from articleqa.qa.features import OPENING_ROW, QUESTION_ROW, analyse, question_vectors
    from training.collect import load

    embeddings = get_embeddings()
    row = OPENING_ROW if reads == "opening" else QUESTION_ROW
    vectors, answers = [], []
    for path in files:
        data_hashes[str(path.relative_to(ROOT))] = sha256(path)
        for q in load(path):
            if q.get("type") not in (None, "null") and q.get("answer"):
                vectors.append(question_vectors(analyse(q["question"]), embeddings)[row])
                answers.append(q["answer"])
    return np.vstack(vectors), answers


def choose_articles(scores, tau):
    """Articles the answer would cite: the best sentence's, then others whose best is >= tau."""
    proba = scores.proba
    cited: list[str] = []
    for j in scores.order():
        article = scores.candidates[j].passage.article_id
        if article in cited:
            continue
        if cited and proba[j] < tau:
            break
        cited.append(article)
        if len(cited) == MAX_ANSWER_ARTICLES:
            break
    return cited


def answer_accuracy_by_set(examples, q_oof_of, threshold, tau) -> dict[str, dict[str, float | int]]:
    """Out of fold, per question file, what `articleqa eval` calls answer accuracy: over the
    answerable questions with a short gold answer (not "Yes"/"No"), the share that are not
    abstained on and whose quoted sentences (the best sentence of each article the answer
    would cite) hold the gold answer as whole words. The fitting-side stand-in for the
    reporting sets' accuracy, to choose between variants without looking at those."""
    from articleqa.qa.evaluation import YES_NO, contains, normalise

    out: dict[str, dict[str, float | int]] = {}
    for name in dict.fromkeys(e.extra["set"] for e in examples):
        hits = []
        for e in examples:
            if e.extra["set"] != name or not e.answerable or not e.gold or normalise(e.gold) in YES_NO:
                continue
            if not len(e.labels) or q_oof_of[e.id] < threshold:
                hits.append(False)
                continue
            cited = choose_articles(e.scores, tau)
            best = {}
            for j in e.scores.order():
                best.setdefault(e.scores.candidates[j].passage.article_id, e.scores.candidates[j].text)
            hits.append(contains(" ".join(best[a] for a in cited), e.gold))
        if hits:
            out[str(name)] = {"questions": len(hits), "answer_accuracy": round(float(np.mean(hits)), 3)}
    return out


def load_cross_oof(path: Path) -> dict[tuple[str, str], float]:
    """(question id, candidate key) -> the cross-encoder's out-of-fold logit."""
    import gzip

    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {(r["q"], r["key"]): float(r["logit"]) for r in rows}


def fit_reranker(examples, near_misses, oof_cross, cross_sha256, k, ks=(2, 4, 6, 8, 12, 16)):
    """Fit the logistic combiner of `qa.scorer.Reranker` for the `k` candidates the
    cross-encoder reads, and set every example's `scores.cross` and `scores.proba` to what the
    shipped scorer would give. The other `ks` are fitted too, for the record only: k is a speed
    setting (each candidate read costs a transformer pass), not a fitted one."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    from articleqa.qa.cross_encoder import candidate_key
    from articleqa.qa.scorer import Reranker, _logit

    missing = 0
    for e in examples + near_misses:
        e.extra["cross_all"] = np.array([oof_cross.get((e.id, candidate_key(c)), np.nan) for c in e.scores.candidates])
        missing += int(np.isnan(e.extra["cross_all"]).sum())
    if missing:
        print(
            f"  {missing} candidates have no cross-encoder logit (retrieval differs from the export): "
            "treated as unread",
            file=sys.stderr,
        )

    def masked(e, k):
        cross = np.full(len(e.labels), np.nan)
        read = e.scores.order()[:k]
        cross[read] = e.extra["cross_all"][read]
        return cross

    def design(e, cross):
        read = np.isfinite(cross)
        return np.column_stack([_logit(e.scores.proba), np.where(read, cross, 0.0), read.astype(float)])

    y = np.concatenate([e.labels for e in examples]).astype(int)
    grid = {}
    for k_ in sorted({*ks, k}):
        xs = np.vstack([design(e, masked(e, k_)) for e in examples])
        lr = LogisticRegression(C=1e4, max_iter=2000).fit(xs, y)
        reranker = Reranker(k_, tuple(float(c) for c in lr.coef_[0]), float(lr.intercept_[0]), cross_sha256)
        hits, offset = [], 0
        p_all = reranker.combine(
            np.concatenate([e.scores.proba for e in examples]), np.concatenate([masked(e, k_) for e in examples])
        )
        for e in examples:
            p = p_all[offset : offset + len(e.labels)]
            offset += len(e.labels)
            if e.answerable and len(e.labels):
                hits.append(e.labels[int(np.argmax(p))])
        grid[k_] = (reranker, float(np.mean(hits)), float(log_loss(y, p_all)))
        print(f"  reranker k={k_}: top-1 {grid[k_][1]:.3f}, log loss {grid[k_][2]:.4f}", file=sys.stderr)
    reranker = grid[k][0]
    for e in examples + near_misses:
        cross = masked(e, k)
        e.scores.proba = reranker.combine(e.scores.proba, cross)
        e.scores.cross = cross.astype(np.float32)
    record = {
        "k": k,
        "by_k": {str(kk): {"top1": round(v[1], 4), "log_loss": round(v[2], 4)} for kk, v in grid.items()},
        "missing_logits": missing,
        "cross_encoder_sha256": cross_sha256,
    }
    return reranker, record


# The two kinds of near miss `training.collect` makes (its docstrings say how).
NEAR_MISS_KINDS = ("articles_removed", "answer_cut")


def oof_by_set(pool, q_oof, qy, is_near_miss, threshold) -> dict[str, dict[str, float | int | None]]:
    """Out-of-fold error rates at `threshold` per question file: a threshold that suits the
    fitting data as a whole can suit one kind of question badly."""
    out = {}
    names = np.array([e.extra["set"] for e in pool])
    kinds = np.array([e.extra.get("kind", "") for e in pool])
    for name in dict.fromkeys(names):
        mine = names == name
        answerable = mine & (qy == 1)
        null = mine & (qy == 0) & ~is_near_miss
        out[str(name)] = {
            "answerable": int(answerable.sum()),
            "false_abstention": round(float(np.mean(q_oof[answerable] < threshold)), 3) if answerable.any() else None,
            "unanswerable": int(null.sum()),
            "abstention_on_unanswerable": round(float(np.mean(q_oof[null] < threshold)), 3) if null.any() else None,
        }
        for kind in NEAR_MISS_KINDS:
            near = mine & is_near_miss & (kinds == kind)
            out[str(name)][f"abstention_on_{kind}"] = (
                round(float(np.mean(q_oof[near] < threshold)), 3) if near.any() else None
            )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--index-dir",
        type=Path,
        default=TRAINING_INDEX_DIR,
        help="Where the training indexes are kept (one subfolder per article set).",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--answer-type-input",
        choices=("opening", "question"),
        default="opening",
        help="What the answer-type model reads: its opening's vector ('On what date did the'; the "
        "shipped weights, since the tenth session) or the whole question's (before; training/README.md).",
    )
    parser.add_argument(
        "--sentence-model",
        choices=("blend", "mlp", "trees"),
        default="blend",
        help="The sentence model fitted beside logistic regression (the lower out-of-fold log loss "
        "is kept): the 5 MLPs and gradient-boosted trees with monotonic constraints, their logits "
        "averaged (the shipped weights, since the tenth session), the MLPs alone (before) or the "
        "trees alone (training/README.md).",
    )
    parser.add_argument(
        "--k",
        type=int,
        default=None,
        help="Passages retrieved per question, as `articleqa ask --k` (default: the product's default, "
        "qa.defaults.DEFAULT_K). The scorer is fitted on what retrieval returns at this k.",
    )
    parser.add_argument(
        "--only",
        choices=[name for name, _a, _q in TRAINING_SETS],
        action="append",
        help="Train on this article set's questions only (repeatable; default: all).",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="At most this many questions per question file (a quick smoke run)."
    )
    parser.add_argument(
        "--max-false-abstention",
        type=float,
        default=0.08,
        help="Highest false-abstention rate allowed on the fitting part (default 0.08: "
        "a margin under the 0.10 target for sampling error on other sets).",
    )
    parser.add_argument(
        "--answer-cut-near-misses",
        action="store_true",
        help="Also train abstention on answer-cut near misses (each answerable question asked "
        "again with its answering sentences cut out; tried, not shipped: training/README.md).",
    )
    parser.add_argument(
        "--answer-type-questions",
        action="store_true",
        help="Also fit the answer-type model on the questions of training.collect.ANSWER_TYPE_ONLY "
        "(tried, not shipped: training/README.md).",
    )
    parser.add_argument(
        "--kind-questions",
        action="store_true",
        help="Also fit the answer-type model on training.collect.ANSWER_TYPE_QUESTIONS, our questions "
        "of every kind of answer (tried, not shipped: training/README.md).",
    )
    parser.add_argument(
        "--answerability-questions",
        action="store_true",
        help="Also fit the answer-type and answerability models on the questions of "
        "training.collect.ANSWER_TYPE_ONLY (and their near misses), never the sentence model "
        "(tried, not shipped: training/README.md).",
    )
    parser.add_argument(
        "--cross-encoder",
        type=Path,
        default=None,
        help="Folder with a cross-encoder's out-of-fold logits (oof.jsonl.gz, from "
        "training.train_cross_encoder, e.g. training/cross_encoder): fit a second stage "
        "on them (default: none; training/README.md says why).",
    )
    parser.add_argument(
        "--rerank-k",
        type=int,
        default=RERANK_K,
        help=f"Candidates the cross-encoder reads per question (default {RERANK_K}).",
    )
    parser.add_argument(
        "--cross-encoder-weights",
        type=Path,
        default=None,
        help="The cross-encoder file the logits came from (default: the one the folder's "
        "report.json names). Its hash ties the scorer to it; install it as "
        "qa/weights/cross_encoder.safetensors to use the scorer.",
    )
    args = parser.parse_args(argv)
    started = time.time()
    np.random.seed(args.seed)

    import sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    from articleqa.qa.defaults import DEFAULT_K
    from articleqa.qa.features import FEATURES
    from articleqa.qa.scorer import (
        ANSWERABILITY_FEATURES,
        answerability_features,
        sentence_inputs,
        sentence_model_from_json,
    )
    from training.collect import ANSWER_TYPE_ONLY, ANSWER_TYPE_QUESTIONS, collect_training_sets

    extra_files = ANSWER_TYPE_ONLY if args.answerability_questions else None
    k = args.k or DEFAULT_K
    collected, data_hashes = collect_training_sets(
        args.index_dir,
        only=args.only,
        limit=args.limit,
        answer_cuts=args.answer_cut_near_misses,
        extra=extra_files,
        k=k,
    )
    # From here on (fitting), one BLAS thread, so that no fitted number depends on how a matrix
    # product is split between threads. The trees' OpenMP threads are left alone (their output
    # was bit-identical). Collection is repeatable too since the twelfth session: Chroma's graph
    # is saved after writes and training searches at TRAINING_EF_SEARCH (training/README.md).
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    extra_sets = {p.name for files in (extra_files or {}).values() for p in files}
    # Questions that teach the answerability model but not the sentence model (tried: --answerability-questions).
    extras = [e for e in collected if e.extra["set"] in extra_sets]
    collected = [e for e in collected if e.extra["set"] not in extra_sets]
    examples = [e for e in collected if not e.extra.get("near_miss")]
    near_misses = [e for e in collected if e.extra.get("near_miss")]
    use_extra = args.answer_type_questions or args.answerability_questions
    type_files = [
        *(ANSWER_TYPE_QUESTIONS if args.kind_questions else ()),
        *(p for files in ANSWER_TYPE_ONLY.values() for p in files if use_extra),
    ]
    answer_type_model, answer_type_record = fit_answer_types(
        examples,
        near_misses,
        args.seed,
        answer_type_only(data_hashes, args.answer_type_input, type_files) if type_files else None,
        reads=args.answer_type_input,
    )
    print(f"answer types: {answer_type_record}", file=sys.stderr)

    # Every sentence row weighs the same. (Weighting each question set equally was tried: it
    # did worse out of fold, 0.556 against 0.567 top-1.)
    row_weight = np.ones(sum(len(e.labels) for e in examples))
    x = np.vstack([sentence_inputs(e.scores.features, e.scores.answer_types) for e in examples])
    y = np.concatenate([e.labels for e in examples]).astype(int)
    groups = np.concatenate([[i] * len(e.labels) for i, e in enumerate(examples)])
    answerable = [e for e in examples if e.answerable]
    with_positive = sum(int(e.labels.any()) for e in answerable)
    print(
        f"rows {len(y)}, positives {int(y.sum())}; answerable questions with a positive among the "
        f"retrieved sentences: {with_positive}/{len(answerable)}",
        file=sys.stderr,
    )

    kind, sentence_weights, oof_p, losses, fold_models = fit_sentence_model(
        x, y, groups, args.seed, row_weight, args.sentence_model
    )
    offset = 0
    for e in examples:
        e.scores.proba = oof_p[offset : offset + len(e.labels)].astype(np.float32)
        offset += len(e.labels)
    top1 = np.mean([e.labels[int(np.argmax(e.scores.proba))] for e in answerable if len(e.labels)])
    print(f"sentence model: {kind}; out-of-fold top-1 positive on answerable questions {top1:.3f}", file=sys.stderr)

    # Near misses are scored by the model trained on the folds without their question.
    fold_of = {}
    for f, (_train, test) in enumerate(GroupKFold(n_splits=FOLDS).split(x, y, groups)):
        for g in set(groups[test]):
            fold_of[examples[g].id] = f
    for e in near_misses:
        e.scores.proba = fold_models[fold_of[e.extra["of"]]](sentence_inputs(e.scores.features, e.scores.answer_types))

    # The second stage: the cross-encoder's out-of-fold logits for the feature model's best k
    # candidates, joined by a logistic combiner; k and the combiner are fitted here.
    reranker_json = None
    reranker_record = None
    top1_features = top1
    if args.cross_encoder is not None:
        from articleqa.qa.weights import file_sha256

        if args.cross_encoder_weights:
            cross_sha256 = file_sha256(args.cross_encoder_weights)
        else:  # the file the logits came from, as its training report names it
            cross_sha256 = json.loads((args.cross_encoder / "report.json").read_text(encoding="utf-8"))[
                "weights_sha256"
            ]
        reranker, reranker_record = fit_reranker(
            examples, near_misses, load_cross_oof(args.cross_encoder / "oof.jsonl.gz"), cross_sha256, args.rerank_k
        )
        reranker_json = reranker.to_json()
        answerable_rows = [e for e in examples if e.answerable]
        top1 = np.mean([e.labels[int(np.argmax(e.scores.proba))] for e in answerable_rows if len(e.labels)])
        print(f"with the cross-encoder (k={reranker.k}): out-of-fold top-1 positive {top1:.3f}", file=sys.stderr)

    # Answerability: logistic regression on question-level features from out-of-fold
    # probabilities, over the real questions and the near misses.
    if extras:  # never in the sentence model's data: its final model scores them honestly
        final_sentence = sentence_model_from_json(sentence_weights)
        for e in extras:
            e.scores.answer_types = answer_type_model.proba(type_vector(e.scores, args.answer_type_input))[0]
            e.scores.proba = final_sentence.proba(sentence_inputs(e.scores.features, e.scores.answer_types))
    pool = examples + near_misses + extras
    qx = np.vstack([answerability_features(e.scores) for e in pool])
    qy = np.array([int(e.answerable) for e in pool])
    is_near_miss = np.array([bool(e.extra.get("near_miss")) for e in pool])
    q_oof = np.zeros(len(qy))
    for train, test in StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=args.seed).split(qx, qy):
        scaler = StandardScaler().fit(qx[train])
        lr = LogisticRegression(C=1.0, max_iter=2000).fit(scaler.transform(qx[train]), qy[train])
        q_oof[test] = lr.predict_proba(scaler.transform(qx[test]))[:, 1]
    q_scaler = StandardScaler().fit(qx)
    q_lr = LogisticRegression(C=1.0, max_iter=2000).fit(q_scaler.transform(qx), qy)
    answerability_weights = dense_from(q_lr, q_scaler)

    positives = np.sort(q_oof[qy == 1])
    allowed = int(np.floor(args.max_false_abstention * len(positives)))
    threshold = float(positives[allowed]) if allowed < len(positives) else 0.5
    false_abstention = float(np.mean(q_oof[qy == 1] < threshold))
    real_null = (qy == 0) & ~is_near_miss
    abstention_null = float(np.mean(q_oof[real_null] < threshold)) if real_null.any() else None
    abstention_near_miss = float(np.mean(q_oof[is_near_miss] < threshold)) if is_near_miss.any() else None
    print(
        f"threshold {threshold:.4f}: out-of-fold false abstention {false_abstention:.3f}, "
        f"abstention on unanswerable {abstention_null}, on near misses {abstention_near_miss}",
        file=sys.stderr,
    )
    by_set = oof_by_set(pool, q_oof, qy, is_near_miss, threshold)
    for name, numbers in by_set.items():
        print(f"  {name}: {numbers}", file=sys.stderr)

    # Multi-source answers: the tau that maximises the F1 of cited against evidence articles.
    def mean_f1(tau: float) -> float:
        f1s = []
        for e in answerable:
            if not e.gold_articles or not len(e.labels):
                continue
            cited = set(choose_articles(e.scores, tau))
            hit = len(cited & set(e.gold_articles))
            f1s.append(2 * hit / (len(cited) + len(e.gold_articles)))
        return float(np.mean(f1s))

    grid = [round(t, 2) for t in np.arange(0.01, 0.96, 0.01)]
    f1_by_tau = {t: mean_f1(t) for t in grid}
    tau = max(grid, key=lambda t: (round(f1_by_tau[t], 4), t))
    print(f"multi-article threshold {tau}: article F1 {f1_by_tau[tau]:.3f}", file=sys.stderr)
    q_oof_of = {e.id: q_oof[i] for i, e in enumerate(pool)}
    accuracy_by_set = answer_accuracy_by_set(
        examples + [e for e in extras if not e.extra.get("near_miss")], q_oof_of, threshold, tau
    )
    print(f"out-of-fold answer accuracy: {accuracy_by_set}", file=sys.stderr)

    minutes = round((time.time() - started) / 60, 1)
    weights = {
        "format": 1,
        "features": list(FEATURES),
        "answerability_features": list(ANSWERABILITY_FEATURES),
        "sentence_model": sentence_weights,
        "answerability_model": answerability_weights,
        "answer_type_model": answer_type_model.to_json(),
        "threshold": round(threshold, 6),
        "multi_article_threshold": tau,
        "reranker": reranker_json,
        "training": {
            "command": "python -m training.train_answer_scorer",
            "seed": args.seed,
            "k": k,
            "limit": args.limit,
            "data": {
                "questions_sha256": data_hashes,
                "credit": "MultiHop-RAG (Tang and Yang, COLM 2024), ODC-BY 1.0; Wikinews, CC BY 2.5",
            },
            "questions": len(examples),
            "answerable": len(answerable),
            "rows": int(len(y)),
            "questions_by_set": {
                name: sum(e.extra["set"] == name for e in examples)
                for name in dict.fromkeys(e.extra["set"] for e in examples)
            },
            "positives": int(y.sum()),
            "sentence_model_kind": kind,
            "out_of_fold_log_loss": losses,
            "out_of_fold_by_set": by_set,
            "out_of_fold_answer_accuracy_by_set": accuracy_by_set,
            "out_of_fold_top1_positive": round(float(top1), 4),
            "out_of_fold_top1_positive_features_only": round(float(top1_features), 4),
            "reranker": reranker_record,
            "answer_types": answer_type_record,
            "sentence_reliability": reliability(np.concatenate([e.scores.proba for e in examples]), y),
            "feature_model_reliability": reliability(oof_p, y),
            "answerability_reliability": reliability(q_oof, qy),
            "out_of_fold_false_abstention": round(false_abstention, 4),
            "out_of_fold_abstention_on_unanswerable": None if abstention_null is None else round(abstention_null, 4),
            "near_misses": len(near_misses),
            "out_of_fold_abstention_on_near_misses": None
            if abstention_near_miss is None
            else round(abstention_near_miss, 4),
            "article_f1_by_tau": {str(t): round(v, 4) for t, v in f1_by_tau.items()},
            "python": platform.python_version(),
            "scikit_learn": sklearn.__version__,
        },
    }
    # The check that the shipped file loads: the same class the answerer uses.
    sentence_model_from_json(sentence_weights).proba(x[:2])
    args.out.write_text(json.dumps(weights, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, sha256 {sha256(args.out)}) in {minutes} min")


if __name__ == "__main__":
    main()
