"""ONNX Runtime backend: CPU here, CUDA or other providers where they are installed."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

from blurtrack.engine.errors import BackendUnavailableError, ModelNotFoundError
from blurtrack.engine.runtime.base import Backend, ModelSession


class OrtSession(ModelSession):
    def __init__(self, session):
        self._session = session
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._session.run(self.output_names, inputs)
        return dict(zip(self.output_names, outputs))


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    model_format = "onnx"

    def __init__(self, threads: int = 2, providers: list[str] | None = None):
        super().__init__(threads)
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise BackendUnavailableError("onnxruntime is not installed: pip install onnxruntime") from exc
        self._ort = ort
        available = ort.get_available_providers()
        self.providers = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]

    @property
    def device(self) -> str:
        return self.providers[0]

    def load(self, model_file: Path, *, weight_inputs: Collection[str] = ()) -> ModelSession:
        model_file = Path(model_file)
        if not model_file.is_file():
            raise ModelNotFoundError(f"model file {model_file} not found: check the bundle folder or re-export it")
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Spinning intra-op threads of several sessions in one process fight for the cores
        # (measured 3x slower with two sessions); a server holds many, so spinning stays off.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        return OrtSession(self._ort.InferenceSession(str(model_file), options, providers=self.providers))
