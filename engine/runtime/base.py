"""The seam between the tracker and the inference runtimes (shaped like onnxruntime's
InferenceSession: a model file in, `run(feeds) -> outputs` out)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from blurtrack.engine.runtime.search import SearchNetwork


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

    def __init__(self, threads: int = 2):
        self.threads = threads

    @abstractmethod
    def load(self, model_file: Path, *, weight_inputs: Collection[str] = ()) -> ModelSession:
        """Load one network file. Raises ModelNotFoundError if it is missing.

        `weight_inputs`: the inputs that are convolution weights (the search network's template
        kernels), which a runtime may have to treat specially."""

    def load_search(self, model_file: Path, image_input: str) -> SearchNetwork:
        """The search network, whose inputs other than `image_input` are convolution weights (a
        target's kernels). Here one whole network serves every target: right for runtimes that
        take new weights on every call."""
        from blurtrack.engine.runtime.search import SharedSearch

        session = self.load(model_file)
        return SharedSearch(session, image_input)

    @property
    @abstractmethod
    def device(self) -> str:
        """Where it runs, in words (e.g. "CPU", "CUDAExecutionProvider")."""

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "device": self.device, "threads": str(self.threads)}
