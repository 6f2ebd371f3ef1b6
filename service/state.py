"""The objects one app instance lives on; built by the app factory, reached by routes through
dependencies (never module globals, so several apps can live in one process)."""

from __future__ import annotations

from dataclasses import dataclass

from blurtrack.service.config import ServiceSettings
from blurtrack.service.demo import DemoCatalog
from blurtrack.service.metrics import ServiceMetrics
from blurtrack.service.sessions import SessionRegistry
from blurtrack.service.worker import InferenceWorker


@dataclass
class ServiceState:
    settings: ServiceSettings
    metrics: ServiceMetrics
    registry: SessionRegistry
    worker: InferenceWorker
    demo: DemoCatalog  # the sequences of --demo-dir the live page can stream
    draining: bool = False  # shutting down: /readyz is 503, no new session or stream

    @classmethod
    def build(cls, settings: ServiceSettings) -> ServiceState:
        metrics = ServiceMetrics()
        return cls(
            settings=settings,
            metrics=metrics,
            registry=SessionRegistry(settings, metrics),
            worker=InferenceWorker(settings),
            demo=DemoCatalog(settings.demo_dir),
        )
