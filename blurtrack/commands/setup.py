"""`blurtrack setup mslite [--home DIR] [--force]`: fetch MindSpore Lite and build its shim."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    targets = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    mslite = targets.add_parser(
        "mslite",
        help="download MindSpore Lite 2.0 (PyPI wheel, used as an archive) and build the ctypes shim",
        description="Download the mindspore-lite 2.0.0 wheel with pip, unpack its native libraries and "
        "build the C shim the mslite backend loads. Idempotent; needs g++.",
    )
    mslite.add_argument("--home", type=Path, default=None, help="install folder (default: BLURTRACK_MSLITE_HOME)")
    mslite.add_argument("--force", action="store_true", help="download, unpack and build again")


def run(args: argparse.Namespace) -> int:
    from blurtrack.engine.runtime.mslite.detect import runtime_status
    from blurtrack.engine.runtime.mslite.install import setup_runtime

    print(setup_runtime(args.home, force=args.force).detail)
    status = runtime_status(args.home)
    print(f"MindSpore Lite: {'available' if status.available else 'unavailable'} ({status.detail})")
    return 0 if status.available else 1
