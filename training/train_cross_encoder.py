"""Fine-tune the bundled MiniLM into the answer cross-encoder (`qa/cross_encoder.py` runs it).

The cross-encoder reads a (question, candidate sentence with its article's title, source and
date) pair, as `qa.cross_encoder.pair_text` writes it, and gives a logit for "this sentence
answers the question". Architecture: the bundled all-MiniLM-L6-v2 transformer, mean pooling
over the pair's tokens, one linear unit. The word-embedding matrix stays frozen (so the shipped
file leaves it out and reuses the bundled model's; 21 MB instead of 44 MB in float16).

Input: the pairs file `python -m training.export_pairs` writes (one row per candidate
sentence of the passages retrieved for each fitting question, labelled as `training.collect`
labels them). Near-miss rows (a question asked again without its evidence articles: every row
negative) are trained on unless `--no-train-near-misses`.

Loss: binary cross-entropy plus `--listwise` times a per-question softmax loss (a batch holds
whole questions, so each positive competes with the other sentences retrieved for its own
question, answer-cut contrasts included). With pointwise loss alone the model ranked a
question's positive first for 0.39-0.41 of the fitting questions out of fold; with the
listwise term, 0.70-0.72 (training/README.md has the runs). Output, in `--out`:

- `oof.npy`: one out-of-fold logit per row (the model of the fold that did not see the row's
  question), for fitting the combiner and the answerability model on honest scores; the same
  logits keyed by question and candidate in `oof.jsonl.gz` (what `train_answer_scorer
  --cross-encoder DIR` reads);
- `cross_encoder.safetensors`: the model trained on every fitting row (float16), with the
  training record (data hash, seed, command, minutes, out-of-fold metrics) in its metadata;
- `report.json`: the same record, and the weights file's SHA-256.

Runs on a GPU in a few minutes (CUDA, bfloat16 autocast; 2.5 minutes for the 5 folds on an
H200 beside two other runs) or, slowly, on a CPU:

    python -m training.train_cross_encoder --pairs PAIRS --base MODEL_DIR --out DIR [--seed 0]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

FOLDS = 5
FROZEN = ("embeddings.word_embeddings.weight",)


def fold_of(question_id: str, folds: int = FOLDS) -> int:
    """The fold of a question (and of its near-miss twins): a hash, so any order gives the same."""
    base = question_id.removesuffix("-near-miss").removesuffix("-answer-cut")
    return int(hashlib.sha256(base.encode()).hexdigest(), 16) % folds


def read_pairs(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def build_model(base: Path, seed: int):
    import torch
    from transformers import AutoModel

    torch.manual_seed(seed)

    class PairScorer(torch.nn.Module):
        """Transformer -> mean pooling over the pair's tokens -> one linear unit."""

        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(base), add_pooling_layer=False).float()
            self.head = torch.nn.Linear(self.encoder.config.hidden_size, 1)
            torch.nn.init.normal_(self.head.weight, std=0.02)
            torch.nn.init.zeros_(self.head.bias)

        def forward(self, input_ids, attention_mask, token_type_ids):
            states = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return self.head(pooled).squeeze(-1)

    model = PairScorer()
    for name, parameter in model.encoder.named_parameters():
        if name in FROZEN:
            parameter.requires_grad_(False)
    return model


def tokenize(tokenizer, rows: list[dict], max_length: int) -> list[dict[str, list[int]]]:
    out = []
    step = 4096
    for at in range(0, len(rows), step):
        chunk = rows[at : at + step]
        enc = tokenizer(
            [r["question"] for r in chunk],
            [r["text"] for r in chunk],
            truncation="longest_first",
            max_length=max_length,
        )
        for i in range(len(chunk)):
            out.append({k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids")})
    return out


def collate(items: list[dict[str, list[int]]], device):
    import torch

    width = max(len(it["input_ids"]) for it in items)
    batch = {}
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        batch[key] = torch.tensor([it[key] + [0] * (width - len(it[key])) for it in items], device=device)
    return batch


class Packed:
    """Every pair padded once into tensors on the device; a batch is an index into them."""

    def __init__(self, encoded: list[dict[str, list[int]]], device):
        import torch

        width = max(len(it["input_ids"]) for it in encoded)
        self.lengths = torch.tensor([len(it["input_ids"]) for it in encoded], device=device)
        self.tensors = {}
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            rows = [it[key] + [0] * (width - len(it[key])) for it in encoded]
            self.tensors[key] = torch.tensor(rows, dtype=torch.long, device=device)

    def batch(self, index):
        width = int(self.lengths[index].max())
        return {key: t[index, :width] for key, t in self.tensors.items()}


def plan_batches(rows, indices, *, batch_size, group_cap, listwise, rng) -> list[tuple[list[int], list[int]]]:
    """One epoch's batches as (rows, group of each row).

    Pointwise: shuffled rows. Listwise: whole questions (at most `group_cap` rows each: every
    positive, then negatives drawn at random), so a question's positive competes in the loss
    with the other sentences retrieved for it, answer-cut contrasts included.
    """
    if not listwise:
        order = list(indices)
        rng.shuffle(order)
        return [
            (order[at : at + batch_size], [0] * len(order[at : at + batch_size]))
            for at in range(0, len(order), batch_size)
        ]
    by_question: dict[str, list[int]] = {}
    for i in indices:
        by_question.setdefault(rows[i]["q"], []).append(i)
    questions = sorted(by_question)
    rng.shuffle(questions)
    batches: list[tuple[list[int], list[int]]] = []
    batch: list[int] = []
    groups: list[int] = []
    group = 0
    for q in questions:
        members = by_question[q]
        positives = [i for i in members if rows[i]["label"]]
        negatives = [i for i in members if not rows[i]["label"]]
        rng.shuffle(negatives)
        chosen = positives + negatives[: max(0, group_cap - len(positives))]
        batch += chosen
        groups += [group] * len(chosen)
        group += 1
        if len(batch) >= batch_size:
            batches.append((batch, groups))
            batch, groups, group = [], [], 0
    if batch:
        batches.append((batch, groups))
    return batches


def listwise_loss(logits, target, groups):
    """Mean over groups with a positive of -log(sum of exp over positives / sum over all),
    each log-sum-exp taken from its own maximum (a positive far below the group's best still
    counts, rather than underflowing to zero)."""
    import torch

    def logsumexp_by_group(values, n):
        top = torch.full((n,), -1e9, device=values.device).scatter_reduce(0, groups, values, "amax")
        summed = torch.zeros(n, device=values.device).index_add(0, groups, torch.exp(values - top[groups]))
        return torch.log(summed) + top, top

    n = int(groups.max()) + 1
    every, _ = logsumexp_by_group(logits, n)
    positives, top = logsumexp_by_group(torch.where(target > 0, logits, torch.full_like(logits, -1e9)), n)
    has = top > -1e8
    if not bool(has.any()):
        return logits.sum() * 0.0
    return (every[has] - positives[has]).mean()


def predict(model, encoded: list[dict], indices: list[int], device, batch_size: int = 512) -> np.ndarray:
    import torch

    model.eval()
    order = sorted(indices, key=lambda i: len(encoded[i]["input_ids"]))
    out = np.zeros(len(encoded), np.float32)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for at in range(0, len(order), batch_size):
            chunk = order[at : at + batch_size]
            out[chunk] = model(**collate([encoded[i] for i in chunk], device)).float().cpu().numpy()
    return out


def train(
    model,
    packed: Packed,
    rows,
    indices,
    *,
    epochs,
    batch_size,
    lr,
    seed,
    device,
    listwise=0.0,
    group_cap=48,
    max_steps=None,
) -> float:
    """AdamW with linear warm-up and decay; binary cross-entropy, plus `listwise` times the
    per-question softmax loss (`listwise_loss`) when it is above 0. Returns seconds taken."""
    import torch

    started = time.time()
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    rng = random.Random(seed)
    plan = [
        b
        for _ in range(epochs)
        for b in plan_batches(rows, indices, batch_size=batch_size, group_cap=group_cap, listwise=listwise > 0, rng=rng)
    ]
    total = len(plan) if max_steps is None else min(max_steps, len(plan))
    warmup = max(1, total // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    labels = torch.tensor([float(r["label"]) for r in rows], device=device)
    for chunk, groups in plan[:total]:
        index = torch.tensor(chunk, device=device)
        target = labels[index]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(**packed.batch(index))
        logits = logits.float()
        loss = loss_fn(logits, target)
        if listwise > 0:
            loss = loss + listwise * listwise_loss(logits, target, torch.tensor(groups, device=device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        scheduler.step()
    model.eval()
    return time.time() - started


def top1(rows: list[dict], logits: np.ndarray) -> float:
    """Share of answerable questions (with a positive among their rows) whose best row is positive."""
    best: dict[str, tuple[float, int]] = {}
    has_positive: set[str] = set()
    for r, z in zip(rows, logits):
        if r["near_miss"] or r.get("augmented"):
            continue
        if r["label"]:
            has_positive.add(r["q"])
        if r["q"] not in best or z > best[r["q"]][0]:
            best[r["q"]] = (float(z), r["label"])
    return float(np.mean([best[q][1] for q in has_positive])) if has_positive else float("nan")


def answerable_auc(rows: list[dict], logits: np.ndarray) -> float:
    """How well a question's best logit tells answerable questions (a positive among the rows)
    from near misses (the same questions with their evidence articles removed): ROC AUC."""
    best: dict[str, float] = {}
    kind: dict[str, int] = {}
    for r, z in zip(rows, logits):
        if r.get("augmented"):
            continue
        best[r["q"]] = max(best.get(r["q"], -np.inf), float(z))
        if r["near_miss"]:
            kind[r["q"]] = 0
        elif r["label"]:
            kind[r["q"]] = 1
    pos = np.array([best[q] for q, k in kind.items() if k == 1])
    neg = np.array([best[q] for q, k in kind.items() if k == 0])
    if not len(pos) or not len(neg):
        return float("nan")
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


def log_loss(y: np.ndarray, z: np.ndarray) -> float:
    p = np.clip(1 / (1 + np.exp(-z)), 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, required=True, help="pairs.jsonl.gz from training.export_pairs")
    parser.add_argument(
        "--base", type=Path, required=True, help="the bundled model's folder (config, tokenizer, weights)"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--folds", type=int, default=FOLDS, help="0: no out-of-fold pass (final model only)")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="stop each training after this many steps (smoke runs)"
    )
    parser.add_argument("--limit", type=int, default=None, help="use the first N rows only (smoke runs)")
    parser.add_argument(
        "--listwise",
        type=float,
        default=1.0,
        help="weight of the per-question softmax loss beside binary cross-entropy (0: pointwise only)",
    )
    parser.add_argument("--group-cap", type=int, default=48, help="rows per question in a listwise batch")
    parser.add_argument(
        "--train-near-misses",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also train on the near-miss rows (all negatives: the evidence articles were removed)",
    )
    parser.add_argument("--no-final", action="store_true", help="out-of-fold pass only; no shipped model")
    args = parser.parse_args(argv)
    started = time.time()

    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.out.mkdir(parents=True, exist_ok=True)

    rows = read_pairs(args.pairs)[: args.limit]
    labels = np.array([r["label"] for r in rows], np.float32)
    trainable = [i for i, r in enumerate(rows) if args.train_near_misses or not r["near_miss"]]
    tokenizer = AutoTokenizer.from_pretrained(str(args.base))
    encoded = tokenize(tokenizer, rows, args.max_length)
    packed = Packed(encoded, device)
    print(
        f"{len(rows)} rows ({len(trainable)} trainable, {int(labels[trainable].sum())} positive) on {device}",
        file=sys.stderr,
        flush=True,
    )

    hyper = dict(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=device,
        max_steps=args.max_steps,
        listwise=args.listwise,
        group_cap=args.group_cap,
    )
    record: dict = {"folds": args.folds, "fold_seconds": []}
    if args.folds:
        oof = np.zeros(len(rows), np.float32)
        folds = np.array([fold_of(r["q"], args.folds) for r in rows])
        for f in range(args.folds):
            model = build_model(args.base, args.seed)
            seconds = train(model, packed, rows, [i for i in trainable if folds[i] != f], **hyper)
            held = [i for i in range(len(rows)) if folds[i] == f]
            oof[held] = predict(model, encoded, held, device)[held]
            record["fold_seconds"].append(round(seconds, 1))
            print(f"fold {f}: {seconds:.0f} s", file=sys.stderr, flush=True)
        np.save(args.out / "oof.npy", oof)
        # What `train_answer_scorer --cross-encoder DIR` reads: the logits keyed by question and candidate.
        with open(args.out / "oof.jsonl.gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            for r, z in zip(rows, oof):
                gz.write((json.dumps({"q": r["q"], "key": r["key"], "logit": round(float(z), 4)}) + "\n").encode())
        real = np.array(trainable)
        record["out_of_fold_top1_positive"] = round(top1(rows, oof), 4)
        record["out_of_fold_log_loss"] = round(log_loss(labels[real], oof[real]), 4)
        record["out_of_fold_answerable_auc"] = round(answerable_auc(rows, oof), 4)
        print(
            f"out of fold: top-1 positive {record['out_of_fold_top1_positive']}, log loss "
            f"{record['out_of_fold_log_loss']}, answerable AUC {record['out_of_fold_answerable_auc']}",
            file=sys.stderr,
            flush=True,
        )

    if args.no_final:
        (args.out / "report.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        return
    model = build_model(args.base, args.seed)
    record["final_seconds"] = round(train(model, packed, rows, trainable, **hyper), 1)
    state = {
        f"encoder.{k}": v.detach().to(torch.float16).contiguous().cpu()
        for k, v in model.encoder.state_dict().items()
        if k not in FROZEN and not k.endswith("position_ids")
    }
    state["head.weight"] = model.head.weight.detach().float().cpu().contiguous()
    state["head.bias"] = model.head.bias.detach().float().cpu().contiguous()
    record.update(
        command="python -m training.train_cross_encoder",
        pairs_sha256=hashlib.sha256(args.pairs.read_bytes()).hexdigest(),
        rows=len(rows),
        positives=int(labels[trainable].sum()),
        seed=args.seed,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        max_length=args.max_length,
        max_steps=args.max_steps,
        limit=args.limit,
        listwise=args.listwise,
        group_cap=args.group_cap,
        train_near_misses=args.train_near_misses,
        device=torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        torch=torch.__version__,
        minutes=round((time.time() - started) / 60, 2),
    )
    save_file(
        state,
        str(args.out / "cross_encoder.safetensors"),
        metadata={"max_length": str(args.max_length), "training": json.dumps(record)},
    )
    # The report also names the file (its hash cannot be inside the file itself).
    weights_sha256 = hashlib.sha256((args.out / "cross_encoder.safetensors").read_bytes()).hexdigest()
    (args.out / "report.json").write_text(
        json.dumps({**record, "weights_sha256": weights_sha256}, indent=1) + "\n", encoding="utf-8"
    )
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
