"""The deblur stage: a cheap blur score, or an unsure tracker, gates a deblur network that runs on
the search crop."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from blurtrack.engine.manifest import DeblurConfig
from blurtrack.engine.runtime.base import ModelSession

DeblurMode = Literal["on", "off", "auto"]


def blur_score(crop_bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the grey crop two pyramid levels down: low means few sharp
    edges, i.e. blurry. At full resolution JPEG's block edges and ringing move the score by up to
    10 % between quality 80 and the original (enough to flip the gate); a quarter-resolution view
    keeps the motion blur that matters and moves under 0.5 %."""
    grey = cv2.pyrDown(cv2.pyrDown(cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2GRAY)))
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


class Deblurrer:
    """Runs the bundle's deblur network on NCHW float crops, when the policy says so."""

    def __init__(self, session: ModelSession | None, input_name: str, output_name: str, policy: DeblurConfig):
        self.session = session
        self.input_name = input_name
        self.output_name = output_name
        self.policy = policy

    def with_policy(self, policy: DeblurConfig) -> Deblurrer:
        """The same network behind another gate (the network session is shared, not reloaded)."""
        return Deblurrer(self.session, self.input_name, self.output_name, policy)

    @property
    def available(self) -> bool:
        return self.session is not None

    def should_run(self, crop_bgr: np.ndarray, mode: DeblurMode) -> bool:
        if self.session is None or mode == "off":
            return False
        if mode == "on":
            return True
        return blur_score(crop_bgr) < self.policy.blur_threshold

    def should_rescue(self, best_score: float, mode: DeblurMode) -> bool:
        """In `auto`, whether a frame the gate left as it came is worth a second look deblurred."""
        return self.session is not None and mode == "auto" and best_score < self.policy.rescue_score

    def __call__(self, crop_nchw: np.ndarray) -> np.ndarray:
        assert self.session is not None
        sharp = self.session.run({self.input_name: crop_nchw})[self.output_name]
        strength = self.policy.strength
        return sharp if strength == 1.0 else strength * sharp + (1.0 - strength) * crop_nchw
