"""Write index/calibration/news.jsonl: the article text the int8 embedder is calibrated on.

NNCF's post-training quantization (index/openvino_backend.py) measures the activations of the
exported model on real inputs to choose the int8 scales. The inputs are chunks of English
Wikinews articles (CC BY 2.5; index/calibration/LICENSE-NOTE.txt), cut by the product's own
chunker, so they look like what the indexer embeds: `CALIBRATION` chunks to quantize with and
`HELD_OUT` others that the accuracy check encodes before the quantized model is first used.

Reproducible: the same corpus file and seed give the same file.

    python -m training.make_calibration [--corpus ../shared/corpus/wikinews-2019-2020.jsonl]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from articleqa.index.chunking import chunk_article
from articleqa.index.models import Article

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "wikinews-2019-2020.jsonl"
OUTPUT = ROOT / "index" / "calibration" / "news.jsonl"
SEED = 0
CALIBRATION = 128
HELD_OUT = 32
PER_ARTICLE = 2  # chunks taken from one article at most, so the sample spans many stories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    rng = random.Random(SEED)
    records = [json.loads(line) for line in args.corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    chunks = []
    for record in records:
        article = Article(id=record["id"], title=record["title"], text=record["body"], origin=record["url"])
        picked = chunk_article(article)
        rng.shuffle(picked)
        chunks += [(record["url"], c.text) for c in picked[:PER_ARTICLE]]
    rng.shuffle(chunks)
    chosen = chunks[: CALIBRATION + HELD_OUT]
    lines = [
        json.dumps({"split": "calibration" if i < CALIBRATION else "held_out", "url": url, "text": text})
        for i, (url, text) in enumerate(chosen)
    ]
    args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} chunks ({CALIBRATION} calibration, {HELD_OUT} held out) to {args.output}")


if __name__ == "__main__":
    main()
