"""Which number format the embedding model runs in on this CPU: bf16, int8 or fp32.

OpenVINO runs the exported model in one of three precisions (index/openvino_backend.py):

- `bf16`: the float32 model computed in bfloat16, on CPUs with bfloat16 instructions
  (AVX512-BF16 or AMX). Vectors at cosine >= 0.9999 to float32.
- `int8`: the model quantized once with NNCF (post-training, calibrated on news article text
  shipped in index/calibration/), on CPUs with 8-bit dot-product instructions (AVX512-VNNI,
  AVX-VNNI or AMX-INT8). Vectors at cosine >= `INT8_MIN_COSINE` to float32.
- `fp32`: plain float32, everywhere else.

`auto` picks in that order from the CPU's flags; a setting (`ARTICLEQA_EMBEDDING_PRECISION`)
forces one, e.g. to measure the other paths on a bfloat16 machine (`make bench` does).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

Precision = Literal["auto", "fp32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "int8")
DEFAULT_PRECISION: Precision = "auto"

# CPU flags (as Linux's /proc/cpuinfo spells them) that make each precision fast.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's model name and the instruction-set flags that matter for the precision."""

    model: str
    flags: frozenset[str]

    @property
    def has_bf16(self) -> bool:
        return bool(self.flags & BF16_FLAGS)

    @property
    def has_vnni(self) -> bool:
        return bool(self.flags & VNNI_FLAGS)

    def summary(self) -> str:
        """e.g. 'AMD EPYC (avx2 avx512f avx512_vnni avx512_bf16)', for logs and benchmarks."""
        shown = [f for f in REPORTED_FLAGS if f in self.flags]
        return f"{self.model} ({' '.join(shown) or 'none of ' + ', '.join(REPORTED_FLAGS)})"


def parse_cpuinfo(text: str) -> CpuInfo:
    """The first processor's model name and flags from the text of /proc/cpuinfo."""
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return CpuInfo(model or platform.processor() or "unknown CPU", flags)


@cache
def cpu_info(path: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """This machine's CPU (Linux); elsewhere the flags are unknown and `auto` means fp32."""
    try:
        return parse_cpuinfo(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return CpuInfo(platform.processor() or "unknown CPU", frozenset())


def choose_precision(requested: str, cpu: CpuInfo | None = None) -> Literal["fp32", "bf16", "int8"]:
    """The precision to run: `requested` itself, or for `auto` the best the CPU runs fast.

    Raises:
        ValueError: `requested` is not one of PRECISIONS, or is `bf16` on a CPU without
            bfloat16 instructions (OpenVINO would silently run float32 instead).
    """
    if requested not in PRECISIONS:
        raise ValueError(f"embedding precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    cpu = cpu or cpu_info()
    if requested == "bf16" and not cpu.has_bf16:
        raise ValueError(
            f"embedding precision 'bf16' needs a CPU with {' or '.join(sorted(BF16_FLAGS))}; "
            f"this one is {cpu.summary()}. Use 'auto', 'int8' or 'fp32'."
        )
    if requested != "auto":
        return requested  # type: ignore[return-value]
    if cpu.has_bf16:
        return "bf16"
    if cpu.has_vnni:
        return "int8"
    return "fp32"


def float_precision(cpu: CpuInfo | None = None) -> Literal["fp32", "bf16"]:
    """The fastest unquantized precision: for models with no int8 calibration of their own
    (the cross-encoder reads question-sentence pairs, not article text)."""
    return "bf16" if (cpu or cpu_info()).has_bf16 else "fp32"
