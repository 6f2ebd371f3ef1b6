"""The seam between the tracker and the inference runtimes (shaped like onnxruntime's
InferenceSession: a model file in, `run(feeds) -> outputs` out)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np


class ModelSession(ABC):
    """One loaded network. `run` may be called from any thread; implementations that are not
    thread-safe serialise calls themselves."""

    input_names: list[str]
    output_names: list[str]

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Feed float32 arrays by input name; get every output by name."""


class Backend(ABC):
    name: str
    #: which file of a bundle's network this backend loads: "onnx" or "ms"
    model_format: str
    #: whether one loaded network may be fed different convolution weights (the templates of
    #: different targets) call after call; if not, each tracker gets its own search network
    weight_inputs_shareable: bool = True

    def __init__(self, threads: int = 2):
        self.threads = threads

    @abstractmethod
    def load(self, model_file: Path, *, weights_are_inputs: bool = False) -> ModelSession:
        """Load one network file. Raises ModelNotFoundError if it is missing.

        `weights_are_inputs`: every input after the first is a convolution weight (the search
        network's template kernels), which a runtime may have to treat specially."""

    @property
    @abstractmethod
    def device(self) -> str:
        """Where it runs, in words (e.g. "CPU", "CUDAExecutionProvider")."""

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "device": self.device, "threads": str(self.threads)}
