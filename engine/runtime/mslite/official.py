"""The official `mindspore_lite` Python package (Ascend / edge devices), behind the same model
contract as the shim: `inputs`, `outputs` and `predict(list[array]) -> list[array]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from blurtrack.engine.errors import BlurtrackError
from blurtrack.engine.runtime.mslite.binding import CONVERT_HINT


class OfficialModel:
    """One built model of the official package."""

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
