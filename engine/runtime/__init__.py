"""Inference runtimes behind one interface, chosen by name or `auto`."""

from __future__ import annotations

import logging

from blurtrack.engine.errors import BackendUnavailableError
from blurtrack.engine.runtime.base import Backend, ModelSession

log = logging.getLogger(__name__)

BACKEND_NAMES = ("auto", "mslite", "onnxruntime")


def mslite_available() -> bool:
    from blurtrack.engine.runtime.mslite.detect import runtime_status

    return runtime_status().available


def get_backend(name: str = "auto", threads: int = 2) -> Backend:
    """Build a backend by name. `auto` takes MindSpore Lite when its runtime is present,
    else ONNX Runtime, and logs which."""
    if name not in BACKEND_NAMES:
        raise BackendUnavailableError(f"unknown backend {name!r}: choose one of {', '.join(BACKEND_NAMES)}")
    if name == "auto":
        if mslite_available():
            log.info("backend auto -> mslite (MindSpore Lite runtime found)")
            name = "mslite"
        else:
            log.info("backend auto -> onnxruntime (MindSpore Lite not set up: run `blurtrack setup mslite`)")
            name = "onnxruntime"
    if name == "mslite":
        from blurtrack.engine.runtime.mslite.backend import MindSporeLiteBackend

        return MindSporeLiteBackend(threads=threads)
    from blurtrack.engine.runtime.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(threads=threads)


__all__ = ["Backend", "ModelSession", "BACKEND_NAMES", "get_backend", "mslite_available"]
