"""The MindSpore Lite backend: sessions over a built model, whichever runtime built it."""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blurtrack.engine.errors import ModelNotFoundError
from blurtrack.engine.runtime.base import Backend, ModelSession
from blurtrack.engine.runtime.mslite.binding import CONVERT_HINT, ShimModel, shim_library
from blurtrack.engine.runtime.mslite.detect import official_module, require_runtime
from blurtrack.engine.runtime.mslite.graph import SEARCH_PARTS
from blurtrack.engine.runtime.mslite.official import OfficialModel
from blurtrack.engine.runtime.search import PerTargetSearch, SearchNetwork, SplitSearch

log = logging.getLogger(__name__)


def open_model(model_file: Path, threads: int, home: Path | None) -> ShimModel | OfficialModel:
    status = require_runtime(home)
    if status.kind == "official":
        return OfficialModel(official_module(), model_file, threads)
    return ShimModel(shim_library(home), model_file, threads)


def names_file(ms_path: Path) -> Path:
    return ms_path.with_name(ms_path.name + ".names.json")


def search_part_file(ms_path: Path, part: str) -> Path:
    """Where `blurtrack models convert` puts one part of a split search network (see
    graph.SearchSplit): search.ms -> search.features.ms, search.head.ms."""
    return ms_path.with_name(f"{ms_path.stem}.{part}.ms")


@dataclass
class _BuiltModel:
    model: ShimModel | OfficialModel
    weights: list[np.ndarray] | None = None  # the weight inputs it was last run with


class MindSporeLiteSession(ModelSession):
    """A network on MindSpore Lite, callable from any number of threads at once.

    One Lite model must not run predict from two threads at once, so the session keeps a pool of
    built models: a call borrows an idle one and builds another only when every one is busy. The
    pool grows to the number of threads that ever ran it together (the service's workers), so
    workers run in parallel instead of queueing on one model (measured: with one shared model,
    two workers ran the search features one at a time).

    `weight_inputs`: the inputs the network convolves with as weights (the Siamese correlation).
    Lite 2.0's CPU convolution packs such a weight on the first predict and keeps it, so a new
    template would be ignored; a model is rebuilt whenever those inputs change (measured: a wrong
    box from the second sequence on, without this)."""

    def __init__(self, open_model, renames: dict[str, dict[str, str]], weight_inputs: Collection[str] = ()):
        self._open_model = open_model
        model = open_model()
        self._idle = [_BuiltModel(model)]
        self._pool_lock = threading.Lock()
        in_map, out_map = renames.get("inputs", {}), renames.get("outputs", {})
        self.input_names = [in_map.get(name, name) for name, _ in model.inputs]
        self.output_names = [out_map.get(name, name) for name, _ in model.outputs]
        self._input_shapes = [shape for _, shape in model.inputs]
        self._weight_indices = [i for i, name in enumerate(self.input_names) if name in weight_inputs]

    @property
    def pool_size(self) -> int:
        """Built models not running now (all of them, between calls)."""
        with self._pool_lock:
            return len(self._idle)

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
        built = self._borrow()
        try:
            if self._weight_indices:
                self._rebuild_if_weights_changed(built, [arrays[i] for i in self._weight_indices])
            outputs = built.model.predict(arrays)
        finally:
            with self._pool_lock:
                self._idle.append(built)
        return dict(zip(self.output_names, outputs))

    def _borrow(self) -> _BuiltModel:
        with self._pool_lock:
            if self._idle:
                return self._idle.pop()
        return _BuiltModel(self._open_model())  # every built model is busy: one more thread runs it

    def _rebuild_if_weights_changed(self, built: _BuiltModel, weights: list[np.ndarray]) -> None:
        if built.weights is not None and all(np.array_equal(a, b) for a, b in zip(weights, built.weights)):
            return
        if built.weights is not None:
            built.model = self._open_model()
        built.weights = [w.copy() for w in weights]


class MindSporeLiteBackend(Backend):
    name = "mslite"
    model_format = "ms"

    def __init__(self, threads: int = 2, home: Path | None = None):
        super().__init__(threads)
        self.home = home
        self.kind = require_runtime(home).kind

    @property
    def device(self) -> str:
        return "CPU"

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "runtime": f"MindSpore Lite ({self.kind})"}

    def load(self, model_file: Path, *, weight_inputs: Collection[str] = (), threads: int | None = None) -> ModelSession:
        model_file = self._existing(model_file)
        sidecar = names_file(model_file)
        renames = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
        opener = functools.partial(open_model, model_file, threads or self.threads, self.home)
        return MindSporeLiteSession(opener, renames, weight_inputs=weight_inputs)

    def load_search(self, model_file: Path, image_input: str) -> SearchNetwork:
        """Lite keeps a convolution's first weights (see MindSporeLiteSession), so one whole
        network cannot serve targets in turn. The converted parts can: the features shared, a head
        per target (its correlations' weights are the target's kernels; on one thread: it is about
        1 ms of work, and a model's threads stay with it). Without the parts (a bundle converted
        before they existed), a whole network per target."""
        model_file = self._existing(model_file)
        parts = {part: search_part_file(model_file, part) for part in SEARCH_PARTS}
        if not all(path.is_file() for path in parts.values()):
            log.warning(
                "%s has no converted parts: each target gets a whole search network of its own; "
                "run `blurtrack models convert` to share one among targets",
                model_file,
            )
            return PerTargetSearch(lambda kernels: self.load(model_file, weight_inputs=kernels), image_input)
        return SplitSearch(
            self.load(parts["features"]),
            lambda kernels: self.load(parts["head"], weight_inputs=kernels, threads=1),
            image_input,
        )

    @staticmethod
    def _existing(model_file: Path) -> Path:
        model_file = Path(model_file)
        if model_file.suffix != ".ms" or not model_file.is_file():
            raise ModelNotFoundError(f"MindSpore Lite model {model_file} not found: {CONVERT_HINT}")
        return model_file
