"""MindSpore Lite backend: runs a bundle's `.ms` files.

Two ways in, tried in this order:
- `official`: the `mindspore_lite` Python package, where it installs (Ascend / edge devices, from
  the MindSpore release site matching the device);
- `shim`: our C shim over the native libraries of PyPI's CPython-3.7-only wheel, loaded with ctypes
  (set up by `blurtrack setup mslite`, see mslite_setup.py).

ONNX stays the source of truth: `.ms` files are made from it on the machine that runs them
(`blurtrack models convert`), because model files only load in the Lite version that wrote them.
The converter may rename tensors; conversion then records the ONNX names in `<file>.ms.names.json`
so sessions are always fed and read by the ONNX names.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from blurtrack.engine.errors import BackendUnavailableError, BlurtrackError, ModelNotFoundError
from blurtrack.engine.runtime.base import Backend, ModelSession
from blurtrack.engine.runtime.mslite_setup import RuntimeStatus, default_home, lib_dir, shim_path

log = logging.getLogger(__name__)

SETUP_HINT = "run `blurtrack setup mslite`"
CONVERT_HINT = "run `blurtrack models convert` to make .ms files from the bundle's ONNX files"
MAX_RANK = 8

# MindSpore logs every warning to stderr; keep errors only unless the user chose a level.
os.environ.setdefault("GLOG_v", "3")


# ---------------------------------------------------------------------------------------------
# Which runtime is here


@functools.cache
def _official_module() -> Any | None:
    try:
        import mindspore_lite  # noqa: PLC0415 - optional, device-specific package
    except Exception:  # ImportError, or a build for another Python / CANN failing at import
        return None
    return mindspore_lite


def runtime_status(home: Path | None = None) -> RuntimeStatus:
    """Whether MindSpore Lite can run here, and through what."""
    official = _official_module()
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


def _require_runtime(home: Path | None) -> RuntimeStatus:
    status = runtime_status(home)
    if not status.available:
        raise BackendUnavailableError(f"MindSpore Lite backend unavailable: {status.detail}")
    return status


# ---------------------------------------------------------------------------------------------
# The shim, through ctypes

_libraries: dict[Path, ctypes.CDLL] = {}
_libraries_lock = threading.Lock()


def denormal_modes() -> tuple[bool, bool]:
    """The calling thread's (flush-to-zero, denormals-are-zero) modes, as Python's floats see them."""
    flush_to_zero = sys.float_info.min / 2.0 == 0.0  # a subnormal result comes out as zero
    smallest_subnormal = struct.unpack("<d", struct.pack("<Q", 1))[0]  # made from bits, no arithmetic
    denormals_are_zero = not smallest_subnormal > 0.0  # a subnormal input reads as zero
    return flush_to_zero, denormals_are_zero


def _shim_library(home: Path | None) -> ctypes.CDLL:
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
                ("bt_convert_onnx", i, [ctypes.c_char_p, ctypes.c_char_p, i]),
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


def _shim_error(lib: ctypes.CDLL) -> str:
    return (lib.bt_last_error() or b"unknown error").decode(errors="replace")


class _ShimModel:
    """One built model in the shim: specs plus `predict(list[array]) -> list[array]` in model order."""

    def __init__(self, lib: ctypes.CDLL, model_file: Path, threads: int):
        self._lib = lib
        self._handle = lib.bt_model_create(str(model_file).encode(), threads)
        if not self._handle:
            raise BlurtrackError(f"MindSpore Lite could not load {model_file}: {_shim_error(lib)}. {CONVERT_HINT}")
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
            raise BlurtrackError(f"MindSpore Lite predict failed: {_shim_error(self._lib)}")
        return outs

    def __del__(self):
        if getattr(self, "_handle", None):
            self._lib.bt_model_free(self._handle)
            self._handle = None


class _OfficialModel:
    """The same contract over the official `mindspore_lite` package."""

    def __init__(self, mslite: Any, model_file: Path, threads: int):
        self._mslite, self._model_file = mslite, model_file
        self._context = mslite.Context()
        self._context.target = ["cpu"]
        self._context.cpu.thread_num = threads
        self._context.cpu.inter_op_parallel_num = 1
        self._build()
        self.inputs = [(t.name, tuple(t.shape)) for t in self._inputs]
        # This API has no get_outputs: one warm-up run tells the output names and shapes. That run
        # would also pack zero template weights for good (see MindSporeLiteSession), so the
        # model is built once more for real use.
        warm = self.predict([np.zeros(shape, np.float32) for _, shape in self.inputs], keep_tensors=True)
        self.outputs = [(t.name, tuple(t.shape)) for t in warm]
        self._build()

    def _build(self) -> None:
        self._model = self._mslite.Model()
        try:
            self._model.build_from_file(str(self._model_file), self._mslite.ModelType.MINDIR_LITE, self._context)
        except RuntimeError as exc:
            raise BlurtrackError(f"MindSpore Lite could not load {self._model_file}: {exc}. {CONVERT_HINT}") from exc
        self._inputs = self._model.get_inputs()

    def predict(self, arrays: list[np.ndarray], keep_tensors: bool = False) -> list[Any]:
        for tensor, array in zip(self._inputs, arrays):
            tensor.set_data_from_numpy(array)
        outputs = self._model.predict(self._inputs)
        return outputs if keep_tensors else [t.get_data_to_numpy() for t in outputs]


def _open_model(model_file: Path, threads: int, home: Path | None) -> _ShimModel | _OfficialModel:
    status = _require_runtime(home)
    if status.kind == "official":
        return _OfficialModel(_official_module(), model_file, threads)
    return _ShimModel(_shim_library(home), model_file, threads)


# ---------------------------------------------------------------------------------------------
# Sessions and the backend


def names_file(ms_path: Path) -> Path:
    return ms_path.with_name(ms_path.name + ".names.json")


class MindSporeLiteSession(ModelSession):
    """`weights_are_inputs`: the network convolves with weights fed as inputs (the Siamese
    correlation). Lite 2.0's CPU convolution packs such a weight on the first predict and keeps it,
    so a new template would be ignored; the model is rebuilt whenever those inputs change
    (measured: a wrong box from the second sequence on, without this)."""

    def __init__(self, open_model, renames: dict[str, dict[str, str]], weights_are_inputs: bool = False):
        self._open_model = open_model
        model = open_model()
        self._model = model
        self._weights_are_inputs = weights_are_inputs
        self._last_weights: list[np.ndarray] | None = None
        # One MindSpore Lite Model must not run predict from two threads at once.
        self._lock = threading.Lock()
        in_map, out_map = renames.get("inputs", {}), renames.get("outputs", {})
        self.input_names = [in_map.get(name, name) for name, _ in model.inputs]
        self.output_names = [out_map.get(name, name) for name, _ in model.outputs]
        self._input_shapes = [shape for _, shape in model.inputs]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise KeyError(f"missing inputs {missing}: this network takes {self.input_names}")
        arrays = []
        for name, shape in zip(self.input_names, self._input_shapes):
            array = np.ascontiguousarray(inputs[name], dtype=np.float32)
            if array.shape != shape:
                raise ValueError(f"input {name!r} has shape {array.shape}, the network expects {shape}")
            arrays.append(array)
        with self._lock:
            if self._weights_are_inputs:
                self._rebuild_if_weights_changed(arrays)
            outputs = self._model.predict(arrays)
        return dict(zip(self.output_names, outputs))

    def _rebuild_if_weights_changed(self, arrays: list[np.ndarray]) -> None:
        # every input but the image (the first) is a template-derived weight
        weights = arrays[1:]
        if self._last_weights is not None and all(np.array_equal(a, b) for a, b in zip(weights, self._last_weights)):
            return
        if self._last_weights is not None:
            self._model = self._open_model()
        self._last_weights = [w.copy() for w in weights]


class MindSporeLiteBackend(Backend):
    name = "mslite"
    model_format = "ms"
    # A new template means a model rebuild (see MindSporeLiteSession): give each tracker its own.
    weight_inputs_shareable = False

    def __init__(self, threads: int = 2, home: Path | None = None):
        super().__init__(threads)
        self.home = home
        self.kind = _require_runtime(home).kind

    @property
    def device(self) -> str:
        return "CPU"

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "runtime": f"MindSpore Lite ({self.kind})"}

    def load(self, model_file: Path, *, weights_are_inputs: bool = False) -> ModelSession:
        model_file = Path(model_file)
        if model_file.suffix != ".ms" or not model_file.is_file():
            raise ModelNotFoundError(f"MindSpore Lite model {model_file} not found: {CONVERT_HINT}")
        sidecar = names_file(model_file)
        renames = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        return MindSporeLiteSession(
            functools.partial(_open_model, model_file, self.threads, self.home), renames, weights_are_inputs=weights_are_inputs
        )


# ---------------------------------------------------------------------------------------------
# ONNX -> .ms conversion

# Run in a child process: the converter can crash outright (a segfault in a fusion pass) and must
# not take the caller with it.
_CONVERT_CHILD = """
import sys
from blurtrack.engine.runtime.mslite import _convert_in_process
sys.exit(_convert_in_process(sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4] or None))
"""


def _convert_in_process(onnx_path: str, output_stem: str, no_fusion: bool, home: str | None) -> int:
    """Writes `<output_stem>.ms`. Returns 0, or 1 after printing the reason to stderr."""
    official = _official_module()
    if official is not None:
        converter = official.Converter()
        converter.save_type = official.ModelType.MINDIR_LITE
        converter.input_format = official.Format.NCHW
        converter.optimize = "none" if no_fusion else "general"
        try:
            converter.convert(official.FmkType.ONNX, onnx_path, output_stem)
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    lib = _shim_library(Path(home) if home else None)
    if lib.bt_convert_onnx(onnx_path.encode(), output_stem.encode(), int(no_fusion)) != 0:
        print(_shim_error(lib), file=sys.stderr)
        return 1
    return 0


def _onnx_specs(onnx_path: Path) -> tuple[list[tuple[str, tuple]], list[tuple[str, tuple]]]:
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}

    def spec(value: Any) -> tuple[str, tuple]:
        dims = value.type.tensor_type.shape.dim
        return value.name, tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)

    return [spec(v) for v in graph.input if v.name not in initializers], [spec(v) for v in graph.output]


def _match_names(kind: str, onnx_specs: list[tuple[str, tuple]], ms_specs: list[tuple[str, tuple]]) -> dict[str, str]:
    """Maps renamed .ms tensors to ONNX names: same names first, the rest in order, with equal shapes."""
    if len(onnx_specs) != len(ms_specs):
        raise BlurtrackError(f"converted model has {len(ms_specs)} {kind}, the ONNX model {len(onnx_specs)}")
    onnx_names = {name for name, _ in onnx_specs}
    ms_names = {name for name, _ in ms_specs}
    left_onnx = [(n, s) for n, s in onnx_specs if n not in ms_names]
    left_ms = [(n, s) for n, s in ms_specs if n not in onnx_names]
    renames = {}
    for (ms_name, ms_shape), (onnx_name, onnx_shape) in zip(left_ms, left_onnx):
        if len(ms_shape) != len(onnx_shape) or any(o is not None and o != m for o, m in zip(onnx_shape, ms_shape)):
            raise BlurtrackError(
                f"cannot tell which ONNX {kind[:-1]} the converted {ms_name!r} {ms_shape} is "
                f"({onnx_name!r} is {onnx_shape})"
            )
        renames[ms_name] = onnx_name
    return renames


def _lite_compatible(onnx_path: Path) -> Any | None:
    """Rewrites what Lite 2.0's ONNX parser rejects into equivalent ONNX; returns None when nothing
    needed it. (1) Conv nodes leaving `strides`, `dilations` or `kernel_shape` to their defaults
    fail with "kernel_size/stride/dilation is nullptr" (torch writes them; hand-built graphs often
    do not). (2) `HardSwish` (opset 14) is "not support[ed]": it becomes x * HardSigmoid(x)."""
    import onnx
    from onnx import helper, shape_inference

    model = onnx.load(str(onnx_path))
    graph = model.graph
    wanted = {"strides", "dilations", "kernel_shape"}
    convs = [
        n for n in graph.node if n.op_type in ("Conv", "ConvTranspose") and not wanted <= {a.name for a in n.attribute}
    ]
    hardswish = [n for n in graph.node if n.op_type == "HardSwish"]
    if not convs and not hardswish:
        return None
    if convs:
        inferred = shape_inference.infer_shapes(model).graph
        shapes = {t.name: list(t.dims) for t in graph.initializer}
        for value in [*inferred.input, *inferred.value_info]:
            dims = value.type.tensor_type.shape.dim
            if dims and all(d.HasField("dim_value") for d in dims):
                shapes[value.name] = [d.dim_value for d in dims]
        for node in convs:
            present = {a.name for a in node.attribute}
            kernel = shapes.get(node.input[1], [])[2:]
            if "kernel_shape" not in present and kernel:
                node.attribute.append(helper.make_attribute("kernel_shape", kernel))
            for name in ("strides", "dilations"):
                if name not in present:
                    node.attribute.append(helper.make_attribute(name, [1] * (len(kernel) or 2)))
    for node in hardswish:
        gate = f"{node.output[0]}__hardsigmoid"
        index = list(graph.node).index(node)
        graph.node.remove(node)
        graph.node.insert(index, helper.make_node("Mul", [node.input[0], gate], list(node.output), name=node.name))
        graph.node.insert(index, helper.make_node("HardSigmoid", [node.input[0]], [gate], alpha=1 / 6, beta=0.5))
    return model


def _converter_errors(stderr: str) -> str:
    """The first MindSpore error lines, without their log prefixes."""
    lines = [line.split("] ", 2)[-1] for line in stderr.splitlines() if line.startswith("[ERROR]")]
    return "; ".join(dict.fromkeys(lines[:3]))


def convert_model(onnx_path: Path, ms_path: Path, no_fusion: bool = False, home: Path | None = None) -> Path:
    """Converts one ONNX file to `ms_path` (inputs kept NCHW) and records renamed tensors."""
    onnx_path, ms_path = Path(onnx_path), Path(ms_path)
    if not onnx_path.is_file():
        raise ModelNotFoundError(f"ONNX model {onnx_path} not found: export it first (`blurtrack models export`)")
    if ms_path.suffix != ".ms":
        raise ValueError(f"{ms_path} must end in .ms (the converter appends it)")
    _require_runtime(home)
    # Convert to a temporary name and move it into place, so a failed run leaves the old file.
    stem = ms_path.with_name(f".{ms_path.stem}.converting-{os.getpid()}")
    produced = stem.with_name(stem.name + ".ms")
    source = onnx_path
    fixed = _lite_compatible(onnx_path)
    if fixed is not None:
        import onnx

        source = stem.with_name(stem.name + ".onnx")
        onnx.save(fixed, str(source))
    command = [sys.executable, "-c", _CONVERT_CHILD, str(source), str(stem), "1" if no_fusion else "0", str(home or "")]
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    finally:
        if source != onnx_path:
            source.unlink(missing_ok=True)
    if result.returncode != 0 or not produced.is_file():
        produced.unlink(missing_ok=True)
        if result.returncode < 0:  # killed by a signal: the converter crashed
            reason = f"the converter crashed (signal {-result.returncode})"
            if not no_fusion:
                reason += "; if it crashed in a fusion pass, set convert_no_fusion for this network"
        else:
            lines = result.stderr.strip().splitlines()
            reason = _converter_errors(result.stderr) or (lines[-1] if lines else f"exit status {result.returncode}")
        raise BlurtrackError(f"converting {onnx_path} to MindSpore Lite failed: {reason}")
    produced.chmod(0o644)  # the converter writes 0400; the service may run as another user
    produced.replace(ms_path)

    inputs, outputs = _onnx_specs(onnx_path)
    model = _open_model(ms_path, 1, home)
    renames = {
        "inputs": _match_names("inputs", inputs, model.inputs),
        "outputs": _match_names("outputs", outputs, model.outputs),
    }
    sidecar = names_file(ms_path)
    if renames["inputs"] or renames["outputs"]:
        sidecar.write_text(json.dumps(renames, indent=2) + "\n")
        log.info("converter renamed tensors of %s; ONNX names kept in %s", ms_path.name, sidecar.name)
    else:
        sidecar.unlink(missing_ok=True)
    return ms_path


def convert_bundle(bundle: Any, home: Path | None = None) -> list[Path]:
    """Converts every network of a bundle (a Bundle, its name or folder) to .ms. Networks without an
    `ms` file name get `<onnx stem>.ms`, and the manifest is saved with it."""
    from blurtrack.engine.manifest import Bundle, load_bundle

    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    written, named = [], False
    for role, net in bundle.manifest.networks().items():
        if net.ms is None:
            net.ms, named = f"{Path(net.onnx).stem}.ms", True
        log.info("converting %s network %s -> %s%s", role, net.onnx, net.ms, " (fusion off)" * net.convert_no_fusion)
        written.append(convert_model(bundle.path(net.onnx), bundle.path(net.ms), net.convert_no_fusion, home))
    if named:
        bundle.save()
    return written
