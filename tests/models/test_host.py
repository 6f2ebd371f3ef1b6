import os
from pathlib import Path

import pytest

from blurtrack.models.evaluation.host import SIMD_FLAGS, host_signature, machine


def test_the_signature_names_this_cpu_and_the_simd_sets_it_has():
    signature = host_signature()
    assert signature["machine"] == machine() and f"{os.cpu_count()} cores" in signature["machine"]
    assert signature["cpu_model"] and signature["cpu_model"] in signature["machine"]
    listed = signature["simd"].split()
    assert set(listed) <= set(SIMD_FLAGS)
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.skip("no /proc/cpuinfo on this OS")
    flags = next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")).split(":", 1)[1].split()
    assert listed == [f for f in SIMD_FLAGS if f in flags]
