"""Prometheus metrics of one app, on its own CollectorRegistry (two apps in one process, as in the
tests, never share or clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Latencies of a CPU tracker are a few ms to a few hundred; buckets in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)

#: stages reported per frame (ms in the result message, seconds in the histogram)
STAGES = ("queue", "decode", "crop", "deblur", "track", "post")


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.stage_seconds = Histogram(
            "blurtrack_stage_seconds", "Per-frame latency of one stage", ["stage"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.frame_seconds = Histogram(
            "blurtrack_frame_seconds",
            "End-to-end latency of a frame, from its arrival to its result being ready",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.frames_received = Counter("blurtrack_frames_received", "Binary frames received on streams", registry=r)
        self.frames_processed = Counter("blurtrack_frames_processed", "Frames tracked and answered", registry=r)
        self.frames_dropped = Counter(
            "blurtrack_frames_dropped", "Frames replaced by a newer one before processing (latest-frame-wins)", registry=r
        )
        self.frames_failed = Counter(
            "blurtrack_frames_failed", "Frames answered with an error instead of a result", ["reason"], registry=r
        )
        self.sessions_created = Counter("blurtrack_sessions_created", "Sessions opened", registry=r)
        self.sessions_ended = Counter("blurtrack_sessions_ended", "Sessions ended", ["reason"], registry=r)
        self.live_sessions = Gauge("blurtrack_live_sessions", "Sessions alive now", registry=r)
        self.backend = Info("blurtrack_backend", "Model bundle and inference runtime being served", registry=r)

    def observe_frame(self, latency_ms: dict[str, float]) -> None:
        for stage in STAGES:
            if stage in latency_ms:
                self.stage_seconds.labels(stage=stage).observe(latency_ms[stage] / 1e3)
        self.frame_seconds.observe(latency_ms["total"] / 1e3)
        self.frames_processed.inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
