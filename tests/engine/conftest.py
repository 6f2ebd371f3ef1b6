"""Engine test fixtures."""

import pytest

from blurtrack.engine.runtime.mslite.install import RuntimeStatus, setup_runtime


@pytest.fixture(scope="session")
def mslite_runtime() -> RuntimeStatus:
    """The MindSpore Lite runtime in the configured mslite_home (CI runs `blurtrack setup mslite`
    first; this is a no-op then, and sets it up otherwise)."""
    return setup_runtime()
