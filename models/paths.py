"""Where the tools find things: the repository and the read-only shared folder beside it."""

from __future__ import annotations

import os
from pathlib import Path

from blurtrack.engine.settings import REPO_ROOT


def shared_dir() -> Path:
    """The read-only shared folder: $BLURTRACK_SHARED_DIR, else `../shared` beside the repo."""
    env = os.environ.get("BLURTRACK_SHARED_DIR")
    return Path(env).expanduser().resolve() if env else (REPO_ROOT.parent / "shared").resolve()
