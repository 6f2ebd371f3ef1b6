"""Pipeline: a bundle's networks loaded once on one backend, handing out per-target trackers.

The service, `blurtrack eval` and `blurtrack track` all build their trackers here, so the numbers
the benchmark prints are the numbers the service serves.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from blurtrack.engine.deblur import DeblurMode, Deblurrer
from blurtrack.engine.manifest import Bundle, DeblurConfig, NetworkSpec, Precision, TrackerConfig, load_bundle
from blurtrack.engine.runtime import get_backend
from blurtrack.engine.runtime.base import Backend, ModelSession
from blurtrack.engine.tracker import SiamRPNTracker, TrackerNetworks, TrackResult

log = logging.getLogger(__name__)

__all__ = ["Pipeline", "TrackResult", "SiamRPNTracker"]


class Pipeline:
    def __init__(self, bundle: Bundle, backend: Backend, precision: str = "auto"):
        self.bundle = bundle
        self.backend = backend
        # `auto`: each network at the precision its manifest chose for this runtime; `fp32` / `int8`
        self.precision = precision
        self.precisions: dict[str, Precision] = {}  # what each network runs at, by role
        manifest = bundle.manifest
        deblur_session = self._load(manifest.deblur) if manifest.deblur is not None else None
        self.networks = TrackerNetworks(
            manifest=manifest,
            template=self._load(manifest.template),
            search=backend.load_search(self._file(manifest.search), manifest.search_image_input),
            deblurrer=Deblurrer(deblur_session, manifest.deblur_image_input, manifest.deblur_output, manifest.deblur_policy),
        )
        log.info("pipeline ready: bundle %s on %s (%s, %d threads)", bundle.name, backend.name, backend.device, backend.threads)

    @classmethod
    def from_bundle(cls, bundle: str | Path, backend: str = "auto", threads: int = 2, precision: str = "auto") -> Pipeline:
        loaded = load_bundle(bundle)
        if backend == "auto" and not loaded.has_ms_files():
            # auto means "MindSpore Lite where it can run": a bundle not converted yet cannot.
            log.info("bundle %s has no .ms files (`blurtrack models convert` makes them): using onnxruntime", loaded.name)
            backend = "onnxruntime"
        return cls(loaded, get_backend(backend, threads=threads), precision=precision)

    def _file(self, spec: NetworkSpec) -> Path:
        """The network's file in the backend's format at the pipeline's precision (recorded by role)."""
        path, precision = self.bundle.network_file(spec, self.backend.model_format, self.backend.name, self.precision)
        self.precisions[self.bundle.manifest.role_of(spec)] = precision
        return path

    def _load(self, spec: NetworkSpec) -> ModelSession:
        return self.backend.load(self._file(spec))

    @property
    def has_deblur(self) -> bool:
        return self.networks.deblurrer.available

    def new_tracker(
        self,
        deblur: DeblurMode | None = None,
        keep_crops: bool = False,
        *,
        tracker_config: TrackerConfig | None = None,
        deblur_policy: DeblurConfig | None = None,
    ) -> SiamRPNTracker:
        """A fresh tracker for one target; `deblur` overrides the bundle's policy (on/off/auto).
        `tracker_config` and `deblur_policy` replace the bundle's settings for this tracker alone
        (tuning builds its candidates so); the loaded networks are shared all the same: a tracker's
        own are only the search network bound to its template."""
        return SiamRPNTracker(self._networks_with(tracker_config, deblur_policy), deblur=deblur, keep_crops=keep_crops)

    def _networks_with(self, tracker_config: TrackerConfig | None, deblur_policy: DeblurConfig | None) -> TrackerNetworks:
        if tracker_config is None and deblur_policy is None:
            return self.networks
        manifest = self.networks.manifest
        if tracker_config is not None:
            manifest = manifest.model_copy(update={"tracker": tracker_config})
        if deblur_policy is not None:
            manifest = manifest.model_copy(update={"deblur_policy": deblur_policy})
        deblurrer = self.networks.deblurrer.with_policy(manifest.deblur_policy)
        return replace(self.networks, manifest=manifest, deblurrer=deblurrer)

    def describe(self) -> dict[str, str]:
        return {
            "bundle": self.bundle.name,
            "bundle_dir": str(self.bundle.root),
            "deblur": "yes" if self.has_deblur else "no",
            "deblur_policy": self.bundle.manifest.deblur_policy.mode,
            "precision": ", ".join(f"{role} {p}" for role, p in self.precisions.items()),
            **self.backend.describe(),
        }
