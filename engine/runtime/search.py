"""The search network as the tracker sees it: loaded once per pipeline, bound to one target's
correlation kernels (the template network's outputs) by `for_target`.

Its non-image inputs are convolution weights. ONNX Runtime takes new weights on every call, so one
whole network serves every target (`SharedSearch`). MindSpore Lite packs a convolution's weights on
the first call and keeps them, so there the network runs in two parts cut where the kernels come in
(`SplitSearch`): the features (backbone and neck, nearly all the work), one model for all targets,
and the head (the depthwise correlations and the RPN head after them), a small model per target
whose correlation weights are that target's kernels. `PerTargetSearch` (a whole network per
target) is what Lite did before the parts existed, and what it still does for a bundle converted
without them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection

import numpy as np

from blurtrack.engine.runtime.base import ModelSession

Kernels = dict[str, np.ndarray]
Outputs = dict[str, np.ndarray]
#: one target's search network: a preprocessed search crop in, the network's outputs by name out
TargetSearch = Callable[[np.ndarray], Outputs]
#: opens a session of a network whose inputs of these names are convolution weights
OpenSession = Callable[[Collection[str]], ModelSession]


class SearchNetwork(ABC):
    def __init__(self, image_input: str):
        self.image_input = image_input

    @abstractmethod
    def for_target(self, kernels: Kernels) -> TargetSearch:
        """The network bound to one target's kernels; call it once per frame."""


class SharedSearch(SearchNetwork):
    """One whole network for every target: the runtime takes the kernels as inputs on each call."""

    def __init__(self, session: ModelSession, image_input: str):
        super().__init__(image_input)
        self.session = session

    def for_target(self, kernels: Kernels) -> TargetSearch:
        feeds = dict(kernels)

        def run(image: np.ndarray) -> Outputs:
            feeds[self.image_input] = image
            return self.session.run(feeds)

        return run


class PerTargetSearch(SearchNetwork):
    """A whole network of its own for each target (~19 MB each for the shipped bundle on Lite)."""

    def __init__(self, open_session: OpenSession, image_input: str):
        super().__init__(image_input)
        self.open_session = open_session

    def for_target(self, kernels: Kernels) -> TargetSearch:
        return SharedSearch(self.open_session(kernels.keys()), self.image_input).for_target(kernels)


class SplitSearch(SearchNetwork):
    """The features shared by all targets, a head per target. Runs exactly the whole network's
    operations: the same outputs, to the bit on MindSpore Lite."""

    def __init__(self, features: ModelSession, open_head: OpenSession, image_input: str):
        super().__init__(image_input)
        self.features, self.open_head = features, open_head

    def for_target(self, kernels: Kernels) -> TargetSearch:
        head = self.open_head(kernels.keys())
        from_features = [name for name in head.input_names if name not in kernels]
        missing = set(from_features) - set(self.features.output_names)
        if missing:
            raise KeyError(f"the search head needs inputs {sorted(missing)} that neither the features nor the kernels give")
        feeds = {name: kernels[name] for name in head.input_names if name in kernels}
        features, image_feeds = self.features, {}

        def run(image: np.ndarray) -> Outputs:
            image_feeds[self.image_input] = image
            found = features.run(image_feeds)
            for name in from_features:
                feeds[name] = found[name]
            return head.run(feeds)

        return run
