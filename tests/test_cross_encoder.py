"""The answer cross-encoder (an optional second stage of the scorer, not shipped: see
training/README.md): its training script's output is what the product loads, OpenVINO and
PyTorch give it the same scores, the scorer reads only the feature model's best k candidates
with it, and a scorer refuses a cross-encoder it was not fitted with."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest

from articleqa.index.embeddings import DEFAULT_MODEL, resolve_model_path
from articleqa.qa.cross_encoder import CrossEncoder, CrossEncoderError, file_sha256, pair_text
from articleqa.qa.models import Passage
from articleqa.qa.scorer import AnswerScorer, Reranker, ScorerWeightsError, load_weights
from training.export_pairs import without_answer

QUESTION = "How much did the bridge repairs cost?"
GOOD = "The repairs cost 9.7 million euros. [Bridge reopens]"
BAD = "The mayor thanked the workers. [Bridge reopens]"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A CPU smoke run of `python -m training.train_cross_encoder` (2 folds, 2 steps each) on a
    few hand-made pairs, from the bundled model: the same code that would make a shipped file."""
    from training.train_cross_encoder import main

    tmp = tmp_path_factory.mktemp("cross-encoder")
    rows = []
    for i in range(8):
        rows += [
            {
                "q": f"q{i}",
                "set": "t",
                "question": QUESTION,
                "label": 1,
                "near_miss": False,
                "key": f"a:{i}:1",
                "text": GOOD,
            },
            {
                "q": f"q{i}",
                "set": "t",
                "question": QUESTION,
                "label": 0,
                "near_miss": False,
                "key": f"a:{i}:2",
                "text": BAD,
            },
        ]
    pairs = tmp / "pairs.jsonl.gz"
    with gzip.open(pairs, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    base = tmp / "base"
    shutil.copytree(resolve_model_path(DEFAULT_MODEL), base)
    out = tmp / "out"
    main(
        [
            "--pairs",
            str(pairs),
            "--base",
            str(base),
            "--out",
            str(out),
            "--folds",
            "2",
            "--max-steps",
            "2",
            "--batch-size",
            "4",
        ]
    )
    return pairs, rows, out


@pytest.mark.slow
def test_training_script_output_is_what_the_product_loads(trained):
    pairs, rows, out = trained
    oof = np.load(out / "oof.npy")
    assert oof.shape == (len(rows),) and np.isfinite(oof).all()
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["rows"] == len(rows) and report["positives"] == 8 and report["pairs_sha256"] == file_sha256(pairs)
    model = CrossEncoder(resolve_model_path(DEFAULT_MODEL), out / "cross_encoder.safetensors", backend="torch")
    logits = model.logits(QUESTION, [GOOD, BAD])
    assert logits.shape == (2,) and np.isfinite(logits).all()
    assert report.pop("weights_sha256") == model.sha256
    assert model.training == report  # the record travels inside the weights file
    from safetensors import safe_open

    with safe_open(str(out / "cross_encoder.safetensors"), framework="np") as f:
        assert not any("word_embeddings" in k for k in f.keys())  # frozen: taken from the bundled model


@pytest.mark.slow
def test_openvino_and_pytorch_give_the_same_scores(trained, tmp_path):
    _pairs, _rows, out = trained
    weights = out / "cross_encoder.safetensors"
    texts = [GOOD, BAD, "The bridge, built in 1911, carries 20,000 cars a day. [Bridge reopens (Wikinews, 2024-05-02)]"]
    ov = CrossEncoder(resolve_model_path(DEFAULT_MODEL), weights, backend="openvino", cache_dir=tmp_path)
    pt = CrossEncoder(resolve_model_path(DEFAULT_MODEL), weights, backend="torch")
    a, b = ov.logits(QUESTION, texts), pt.logits(QUESTION, texts)
    assert ov.backend == "openvino" and pt.backend == "torch"
    # bfloat16 on CPUs that have it moves logits by a few hundredths (0.03 measured).
    assert np.max(np.abs(a - b)) < 0.15


@pytest.mark.slow
def test_the_scorer_reads_only_the_feature_models_best_k_with_the_cross_encoder(trained, embeddings):
    _pairs, _rows, out = trained
    cross = CrossEncoder(resolve_model_path(DEFAULT_MODEL), out / "cross_encoder.safetensors", backend="torch")
    reranker = Reranker(k=2, coef=(1.0, 0.5, 0.0), bias=0.0, cross_encoder_sha256=cross.sha256)
    weights = {**load_weights(), "reranker": reranker.to_json()}
    plain = AnswerScorer(embeddings)
    scorer = AnswerScorer(embeddings, weights=weights, cross_encoder=cross)
    text = (
        "The bridge reopened on Tuesday. The repairs cost 9.7 million euros. The mayor thanked the workers. "
        "Traffic was heavy in the morning."
    )
    passage = Passage(
        chunk_id="x:0", article_id="x", title="Bridge reopens", text=text, start=0, end=len(text), score=1.0
    )
    before = plain.featurise(QUESTION, [passage])
    after = scorer.featurise(QUESTION, [passage])
    read = before.order()[:2]
    assert sorted(np.flatnonzero(np.isfinite(after.cross))) == sorted(read)
    expected = cross.logits(QUESTION, [pair_text(after.candidates[j]) for j in read])
    assert after.cross[read] == pytest.approx(expected, abs=1e-5)
    assert after.proba == pytest.approx(reranker.combine(before.proba, after.cross), abs=1e-6)


def test_a_cross_encoder_the_scorer_was_not_trained_with_is_refused(tmp_path):
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"some other weights")
    weights = {**load_weights(), "reranker": Reranker(4, (1.0, 1.0, 0.0), 0.0, "0" * 64).to_json()}
    with pytest.raises(ScorerWeightsError, match="not the one the answer scorer was trained with"):
        AnswerScorer(object(), weights=weights, cross_encoder=CrossEncoder(resolve_model_path(DEFAULT_MODEL), other))


def test_the_shipped_scorer_has_no_second_stage():
    # The cross-encoder did not earn its cost (training/README.md); a scorer fitted with one
    # would name it here, and the product would then load qa/weights/cross_encoder.safetensors.
    assert load_weights().get("reranker") is None


def test_unreadable_cross_encoder_weights_say_how_to_fix(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CrossEncoderError, match="retrain"):
        CrossEncoder(resolve_model_path(DEFAULT_MODEL), bad, backend="torch").logits("q?", ["a sentence"])


def test_answer_cut_contrast_removes_the_answer_and_keeps_the_rest():
    assert (
        without_answer("Caloundra beat Redcliffe 24-12 in round 3.", "24-12") == "Caloundra beat Redcliffe in round 3."
    )
    assert (
        without_answer("Sam Bankman-Fried, FTX's founder, was convicted.", "sam bankman-fried")
        == ", FTX's founder, was convicted."
    )
    assert without_answer("The vote was yes.", "Yes") is None  # yes/no answers are not spans
    assert without_answer("Nothing to cut here at all.", "Paris") is None
