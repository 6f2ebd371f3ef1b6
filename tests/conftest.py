"""Shared fixtures: the hand-made test bundle, ../shared and the MindSpore Lite runtime (each
skipped with a message when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from blurtrack.engine.runtime.mslite.detect import runtime_status
from blurtrack.engine.runtime.mslite.install import RuntimeStatus
from blurtrack.models.paths import shared_dir
from blurtrack.models.testbundle import build_test_bundle


def require_mslite() -> RuntimeStatus:
    """Skips the calling test unless MindSpore Lite is set up. Tests never install it: that is
    `make setup`'s job (it needs the network)."""
    status = runtime_status()
    if not status.available:
        pytest.skip(f"{status.detail} (`make setup` does that)")
    return status


@pytest.fixture(scope="session")
def mslite_runtime() -> RuntimeStatus:
    return require_mslite()


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not (path / "data").is_dir():
        pytest.skip(f"../shared is not beside the repository ({path}); these tests need its data")
    return path


@pytest.fixture(scope="session")
def test_bundle(tmp_path_factory) -> Path:
    """The hand-made ONNX bundle (models/testbundle.py), built once per test session."""
    return build_test_bundle(tmp_path_factory.mktemp("bundle") / "test-matched-filter")
