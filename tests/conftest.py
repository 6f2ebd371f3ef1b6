"""Shared fixtures: the hand-made test bundle, and ../shared (skipped with a message when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from blurtrack.models.paths import shared_dir
from blurtrack.models.testbundle import build_test_bundle

REPO_ROOT = Path(__file__).resolve().parent.parent


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
