"""Train the tracker on what it sees at inference: crops the deblur gate passes are deblurred.

In the shipped pipeline the deblur network rewrites blurry search crops (and a blurry first
template) before the tracker sees them, so a tracker trained on raw crops only meets the
deblurrer's output at test time. This sampler wrapper runs the same gate and the same deblur
network (a bundle's deblur.onnx on ONNX Runtime, through engine.deblur) on every training pair.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from blurtrack.engine.deblur import Deblurrer
from blurtrack.engine.manifest import load_bundle
from blurtrack.engine.runtime import get_backend
from blurtrack.models.tracker.data import Pair


class DeblurredInput:
    """Wraps a pair sampler; `counts` tallies how many crops the gate sent through the network."""

    def __init__(self, sampler, bundle: str | Path, threads: int = 1):
        loaded = load_bundle(bundle)
        manifest = loaded.manifest
        if manifest.deblur is None:
            raise SystemExit(f"deblur_input: bundle {bundle} has no deblur network")
        session = get_backend("onnxruntime", threads=threads).load(loaded.path(manifest.deblur.onnx))
        self.deblurrer = Deblurrer(session, manifest.deblur_image_input, manifest.deblur_output, manifest.deblur_policy)
        self.side = int(manifest.deblur.inputs[0].shape[-1])
        self.preprocess = manifest.preprocess
        self.sampler = sampler
        self.counts = {"search": 0, "template": 0, "pairs": 0}

    def _deblur(self, crop: np.ndarray) -> np.ndarray:
        return self.preprocess.to_image(self.deblurrer(self.preprocess.to_input(crop)))

    def _maybe_search(self, search: np.ndarray) -> np.ndarray:
        if not self.deblurrer.should_run(search, "auto"):
            return search
        self.counts["search"] += 1
        return self._deblur(search)

    def _maybe_template(self, template: np.ndarray) -> np.ndarray:
        # At init the engine gates and deblurs the search-sized crop around the target and keeps
        # its centre; a training pair has only the 127 crop, so reflect-pad it to the network's side.
        pad = (self.side - template.shape[0]) // 2
        extra = self.side - template.shape[0] - 2 * pad
        big = cv2.copyMakeBorder(template, pad, pad + extra, pad, pad + extra, cv2.BORDER_REFLECT_101)
        if not self.deblurrer.should_run(big, "auto"):
            return template
        self.counts["template"] += 1
        h, w = template.shape[:2]
        return np.ascontiguousarray(self._deblur(big)[pad : pad + h, pad : pad + w])

    def sample(self, rng: np.random.Generator) -> Pair:
        pair = self.sampler.sample(rng)
        self.counts["pairs"] += 1
        return Pair(
            template=self._maybe_template(pair.template),
            search=self._maybe_search(pair.search),
            box=pair.box,
            negative=pair.negative,
        )
