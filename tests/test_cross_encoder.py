"""The answer cross-encoder (an optional second stage of the scorer, not shipped: see
training/README.md): its training script's output is what the product loads, its listwise loss
and batches are what they say, OpenVINO and PyTorch give it the same scores, a cached export
runs without PyTorch on the tokens training used, the scorer reads only the feature model's
best k candidates with it, and a scorer refuses a cross-encoder it was not fitted with."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

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
    with gzip.open(out / "oof.jsonl.gz", "rt", encoding="utf-8") as f:
        keyed = [json.loads(line) for line in f]
    assert [(k["q"], k["key"]) for k in keyed] == [(r["q"], r["key"]) for r in rows]
    assert [k["logit"] for k in keyed] == pytest.approx(oof.tolist(), abs=1e-4)
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


def test_listwise_loss_is_each_questions_softmax_loss_on_its_positives():
    import torch

    from training.train_cross_encoder import listwise_loss

    logits = torch.tensor([2.0, 0.0, -1.0, 0.5, 1.5, 3.0])
    target = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 2])  # question 2 has no positive: left out
    first = -torch.log_softmax(logits[:3], 0)[0]
    second = -torch.log_softmax(logits[3:5], 0)[1]
    assert float(listwise_loss(logits, target, groups)) == pytest.approx(float((first + second) / 2), abs=1e-6)
    # A positive ranked higher within its question lowers the loss.
    better = logits.clone()
    better[0] = 4.0
    assert float(listwise_loss(better, target, groups)) < float(listwise_loss(logits, target, groups))
    # A positive far below its question's best still counts (no underflow to a dropped group).
    far = listwise_loss(torch.tensor([-200.0, 0.0]), torch.tensor([1.0, 0.0]), torch.tensor([0, 0]))
    assert float(far) == pytest.approx(200.0, rel=1e-4)


def test_listwise_batches_hold_whole_questions_with_every_positive():
    import random

    from training.train_cross_encoder import plan_batches

    rows = [{"q": f"q{i // 10}", "label": int(i % 10 == 3)} for i in range(60)]
    batches = plan_batches(rows, range(60), batch_size=12, group_cap=6, listwise=True, rng=random.Random(0))
    seen = [i for batch, _groups in batches for i in batch]
    assert len(seen) == len(set(seen)) == 36  # 6 questions, 6 rows each (the cap)
    for batch, groups in batches:
        assert len(batch) == len(groups)
        for g in set(groups):
            members = [i for i, gg in zip(batch, groups) if gg == g]
            assert len({rows[i]["q"] for i in members}) == 1  # a group is one question
            assert sum(rows[i]["label"] for i in members) == 1  # its positive always kept


def test_pair_tokens_are_those_the_training_tokenizer_gives():
    from transformers import AutoTokenizer

    from articleqa.index.encoding import layout_from_folder, load_tokenizer

    folder = resolve_model_path(DEFAULT_MODEL)
    hf = AutoTokenizer.from_pretrained(str(folder))  # what training/train_cross_encoder.py uses
    rust = load_tokenizer(Path(folder), layout_from_folder(Path(folder)))
    rust.enable_truncation(max_length=128, strategy="longest_first")
    long_text = "The council met on Tuesday and voted on the budget. " * 30
    for question, text in [(QUESTION, GOOD), (QUESTION * 8, long_text), (QUESTION, long_text)]:
        expected = hf(question, text, truncation="longest_first", max_length=128)
        got = rust.encode(question, text)
        real = sum(got.attention_mask)  # the rest is padding (to a multiple of 16), masked out
        assert got.ids[:real] == expected["input_ids"]
        assert got.type_ids[:real] == expected["token_type_ids"]


@pytest.mark.slow
def test_a_cached_cross_encoder_export_runs_without_pytorch(trained, tmp_path):
    _pairs, _rows, out = trained
    weights = out / "cross_encoder.safetensors"
    first = CrossEncoder(resolve_model_path(DEFAULT_MODEL), weights, backend="openvino", cache_dir=tmp_path)
    expected = first.logits(QUESTION, [GOOD, BAD])  # exports (with PyTorch) into tmp_path
    script = (
        "import json, sys\n"
        "from articleqa.index.embeddings import DEFAULT_MODEL, resolve_model_path\n"
        "from articleqa.qa.cross_encoder import CrossEncoder\n"
        f"ce = CrossEncoder(resolve_model_path(DEFAULT_MODEL), {str(weights)!r}, backend='openvino', "
        f"cache_dir={str(tmp_path)!r})\n"
        f"logits = ce.logits({QUESTION!r}, [{GOOD!r}, {BAD!r}])\n"
        "print(json.dumps({'logits': logits.tolist(), 'torch': 'torch' in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["torch"] is False, done.stderr[-2000:]
    assert result["logits"] == pytest.approx(expected.tolist(), abs=1e-4)
