"""What a measurement ran on. Tracking accuracy, not just speed, depends on it: the same bundles on
the same frames give different boxes on CPUs whose runtimes pick other SIMD kernels (the last bits
of a score differ, and a tracker follows its own boxes), e.g. synthetic-test S@0.6 0.722 on one
2-core host and 0.732 on another. Rankings recorded on different hosts are therefore not compared."""

from __future__ import annotations

import os
import platform
from pathlib import Path

# the instruction sets whose presence changes which kernels ONNX Runtime / MindSpore Lite / OpenCV run
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile")


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
            if flags:  # the first processor's block is enough; x86 lists its model name first
                break
    except OSError:
        pass
    return model, flags


def machine() -> str:
    """CPU model, core count and OS, for reports: 'AMD EPYC, 2 cores, Linux'."""
    model, _ = _cpuinfo()
    return f"{model}, {os.cpu_count()} cores, {platform.system()}"


def host_signature() -> dict[str, str]:
    """What must match for two accuracy measurements of one bundle to be comparable."""
    model, flags = _cpuinfo()
    return {"machine": machine(), "cpu_model": model, "simd": " ".join(f for f in SIMD_FLAGS if f in flags)}
