"""The MindSpore Lite backend: sessions over a built model, whichever runtime built it."""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path

import numpy as np

from blurtrack.engine.errors import ModelNotFoundError
from blurtrack.engine.runtime.base import Backend, ModelSession
from blurtrack.engine.runtime.mslite.binding import CONVERT_HINT, ShimModel, shim_library
from blurtrack.engine.runtime.mslite.detect import official_module, require_runtime
from blurtrack.engine.runtime.mslite.official import OfficialModel


def open_model(model_file: Path, threads: int, home: Path | None) -> ShimModel | OfficialModel:
    status = require_runtime(home)
    if status.kind == "official":
        return OfficialModel(official_module(), model_file, threads)
    return ShimModel(shim_library(home), model_file, threads)


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
        self.kind = require_runtime(home).kind

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
            functools.partial(open_model, model_file, self.threads, self.home), renames, weights_are_inputs=weights_are_inputs
        )
