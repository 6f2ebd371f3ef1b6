"""Which MindSpore Lite runtime is here: the official package, our shim, or none."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from blurtrack.engine.errors import BackendUnavailableError
from blurtrack.engine.runtime.mslite.install import RuntimeStatus, default_home, lib_dir, shim_path

SETUP_HINT = "run `blurtrack setup mslite`"


@functools.cache
def official_module() -> Any | None:
    try:
        import mindspore_lite  # optional, device-specific package
    except Exception:  # ImportError, or a build for another Python / CANN failing at import
        return None
    return mindspore_lite


def runtime_status(home: Path | None = None) -> RuntimeStatus:
    """Whether MindSpore Lite can run here, and through what."""
    official = official_module()
    if official is not None:
        version = getattr(official, "__version__", "?")
        return RuntimeStatus(True, "official", f"mindspore_lite {version} Python package")
    home = Path(home) if home is not None else default_home()
    shim = shim_path(home)
    if shim.is_file() and lib_dir(home).is_dir():
        return RuntimeStatus(True, "shim", f"shim {shim} over {lib_dir(home)}")
    if any(home.glob("libbt_mslite_*.so")):
        return RuntimeStatus(False, None, f"the shim in {home} is out of date: {SETUP_HINT}")
    return RuntimeStatus(False, None, f"MindSpore Lite is not set up in {home}: {SETUP_HINT}")


def require_runtime(home: Path | None) -> RuntimeStatus:
    status = runtime_status(home)
    if not status.available:
        raise BackendUnavailableError(f"MindSpore Lite backend unavailable: {status.detail}")
    return status
