"""Our C shim over MindSpore Lite's native libraries, through ctypes."""

from __future__ import annotations

import ctypes
import logging
import struct
import sys
import threading
from pathlib import Path

import numpy as np

from blurtrack.engine.errors import BlurtrackError
from blurtrack.engine.runtime.mslite.install import default_home, shim_path

log = logging.getLogger(__name__)

CONVERT_HINT = "run `blurtrack models convert` to make .ms files from the bundle's ONNX files"
MAX_RANK = 8

_libraries: dict[Path, ctypes.CDLL] = {}
_libraries_lock = threading.Lock()


def denormal_modes() -> tuple[bool, bool]:
    """The calling thread's (flush-to-zero, denormals-are-zero) modes, as Python's floats see them."""
    flush_to_zero = sys.float_info.min / 2.0 == 0.0  # a subnormal result comes out as zero
    smallest_subnormal = struct.unpack("<d", struct.pack("<Q", 1))[0]  # made from bits, no arithmetic
    denormals_are_zero = not smallest_subnormal > 0.0  # a subnormal input reads as zero
    return flush_to_zero, denormals_are_zero


def shim_library(home: Path | None) -> ctypes.CDLL:
    """Loads the shim once per process (loading the MindSpore libraries takes ~0.3 s)."""
    path = shim_path(Path(home) if home is not None else default_home())
    with _libraries_lock:
        if path not in _libraries:
            modes_before = denormal_modes()
            lib = ctypes.CDLL(str(path))  # CDLL calls release the GIL while MindSpore runs
            p, i, i64p = ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int64)
            for name, restype, argtypes in [
                ("bt_last_error", ctypes.c_char_p, []),
                ("bt_model_create", p, [ctypes.c_char_p, i]),
                ("bt_model_free", None, [p]),
                ("bt_model_num_inputs", i, [p]),
                ("bt_model_num_outputs", i, [p]),
                ("bt_model_tensor_name", ctypes.c_char_p, [p, i, i]),
                ("bt_model_tensor_shape", i, [p, i, i, i64p, i]),
                ("bt_model_predict", i, [p, p, i64p, p, i64p]),
                ("bt_convert_onnx", i, [ctypes.c_char_p, ctypes.c_char_p, i, ctypes.c_char_p]),
                ("bt_set_denormal_modes", i, [i, i]),
            ]:
                fn = getattr(lib, name)
                fn.restype, fn.argtypes = restype, argtypes
            # A fast-math library in the wheel turns flush-to-zero on in this thread as it loads;
            # put back the float arithmetic the thread had (the shim's calls keep it from then on).
            if denormal_modes() != modes_before and lib.bt_set_denormal_modes(*modes_before) != 0:
                log.warning("loading MindSpore Lite turned on flush-to-zero in this thread; it could not be undone here")
            _libraries[path] = lib
        return _libraries[path]


def shim_error(lib: ctypes.CDLL) -> str:
    return (lib.bt_last_error() or b"unknown error").decode(errors="replace")


class ShimModel:
    """One built model in the shim: specs plus `predict(list[array]) -> list[array]` in model order."""

    def __init__(self, lib: ctypes.CDLL, model_file: Path, threads: int):
        self._lib = lib
        self._handle = lib.bt_model_create(str(model_file).encode(), threads)
        if not self._handle:
            raise BlurtrackError(f"MindSpore Lite could not load {model_file}: {shim_error(lib)}. {CONVERT_HINT}")
        self.inputs = [self._spec(0, i) for i in range(lib.bt_model_num_inputs(self._handle))]
        self.outputs = [self._spec(1, i) for i in range(lib.bt_model_num_outputs(self._handle))]

    def _spec(self, is_output: int, index: int) -> tuple[str, tuple[int, ...]]:
        dims = (ctypes.c_int64 * MAX_RANK)()
        rank = self._lib.bt_model_tensor_shape(self._handle, is_output, index, dims, MAX_RANK)
        name = self._lib.bt_model_tensor_name(self._handle, is_output, index).decode()
        return name, tuple(dims[: min(rank, MAX_RANK)])

    def predict(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        outs = [np.empty(shape, np.float32) for _, shape in self.outputs]
        in_ptrs = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        in_sizes = (ctypes.c_int64 * len(arrays))(*[a.size for a in arrays])
        out_ptrs = (ctypes.c_void_p * len(outs))(*[o.ctypes.data for o in outs])
        out_sizes = (ctypes.c_int64 * len(outs))(*[o.size for o in outs])
        if self._lib.bt_model_predict(self._handle, in_ptrs, in_sizes, out_ptrs, out_sizes) != 0:
            raise BlurtrackError(f"MindSpore Lite predict failed: {shim_error(self._lib)}")
        return outs

    def __del__(self):
        if getattr(self, "_handle", None):
            self._lib.bt_model_free(self._handle)
            self._handle = None
