"""Split the MultiHop-RAG development questions into a fitting part and a reporting part.

MultiHop-RAG (Tang and Yang, COLM 2024; ODC-BY 1.0, see tests/data/multihop-rag/LICENSE-NOTE.txt)
ships 1,260 development questions here. Every constant of the answerer (the learned scorer's
weights, its calibration, the abstention threshold) is fitted on `questions-fit.jsonl`;
published numbers are measured on `questions-report.jsonl`, which nothing is fitted to.

The split is by a hash of the question id (not file order, not random state), so it is stable
when questions are added and anyone can recompute it:

    python -m training.split_multihop          # rewrites the two files, prints the counts
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "multihop-rag"
SOURCE = DATA / "questions-dev.jsonl"
FIT = DATA / "questions-fit.jsonl"
REPORT = DATA / "questions-report.jsonl"
REPORT_SHARE = 0.5  # half of the questions are kept for reporting


def part_of(question_id: str) -> str:
    """ "fit" or "report", from the SHA-1 of the id (uniform, stable, order-independent)."""
    bucket = int(hashlib.sha1(question_id.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "report" if bucket < REPORT_SHARE else "fit"


def main() -> None:
    lines = [line for line in SOURCE.read_text(encoding="utf-8").splitlines() if line.strip()]
    parts: dict[str, list[str]] = {"fit": [], "report": []}
    counts: Counter[tuple[str, str]] = Counter()
    for line in lines:
        question = json.loads(line)
        part = part_of(question["id"])
        parts[part].append(line)
        counts[(part, question["question_type"])] += 1
    FIT.write_text("\n".join(parts["fit"]) + "\n", encoding="utf-8")
    REPORT.write_text("\n".join(parts["report"]) + "\n", encoding="utf-8")
    for (part, kind), n in sorted(counts.items()):
        print(f"{part:7} {kind:18} {n}")
    print(f"fit {len(parts['fit'])}, report {len(parts['report'])}")


if __name__ == "__main__":
    main()
