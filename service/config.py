"""Service settings: CLI flags override `BLURTRACK_*` environment variables (pydantic-settings).

Every limit the service enforces is here, so an operator can tune it without a code change.
The engine's own names (`BLURTRACK_BUNDLE`, `BLURTRACK_BACKEND`, `BLURTRACK_THREADS`) are shared
with `engine.settings.EngineSettings` on purpose: one variable sets both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_workers() -> int:
    """One worker thread more than the CPUs this process may run on. A frame's Python steps hold
    the GIL for a while, so with one thread per core a core sits idle at times; measured on 2 cores
    with 16 real-clip sessions (`python scripts/load_bench.py --sweep --sweep-grid 2x1,2x2,1x2,3x1`):
    3 workers x 1 thread 129 frames/s, 2 x 1 112, 2 x 2 104, 1 x 2 89."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cpus + 1


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BLURTRACK_", extra="ignore")

    # -- where and what it serves ------------------------------------------------------------
    host: str = Field("127.0.0.1", description="interface to listen on (0.0.0.0 in a container)")
    port: int = Field(8000, ge=0, le=65535, description="TCP port")
    bundle: str = Field("blurtrack-effnet-eca", description="model bundle: a name under BLURTRACK_MODELS_DIR or a folder")
    backend: Literal["auto", "mslite", "onnxruntime"] = Field("auto", description="inference runtime")
    threads: int = Field(
        1, ge=1, description="intra-op threads per model session (1: sessions' frames run in parallel on the workers instead)"
    )
    precision: Literal["auto", "fp32", "int8"] = Field(
        "auto", description="network precision: auto (the bundle's choice per network for the runtime), fp32 or int8"
    )

    # -- limits -------------------------------------------------------------------------------
    workers: int = Field(
        default_factory=default_workers,
        ge=1,
        description="inference worker threads (frames of different sessions run in parallel); default: CPUs + 1",
    )
    max_sessions: int = Field(64, ge=1, description="live sessions at most; past it POST /v1/sessions answers 503")
    idle_timeout_s: float = Field(60.0, gt=0, description="a session with no frame or call for this long is ended")
    expiry_check_s: float = Field(1.0, gt=0, description="how often idle sessions are looked for")
    max_frame_bytes: int = Field(4 * 1024 * 1024, ge=1, description="largest encoded frame accepted (bytes)")
    max_frame_pixels: int = Field(4096 * 2160, ge=1, description="largest decoded frame accepted (width x height)")
    body_timeout_s: float = Field(
        30.0, gt=0, description="an HTTP request body must arrive whole within this many seconds (else 408)"
    )
    max_connections: int = Field(
        256, ge=1, description="HTTP requests and WebSocket streams served at once (probes excepted); past it 503 / close 1013"
    )
    max_message_bytes: int | None = Field(
        None,
        ge=1,
        description="largest WebSocket message; past it the server closes the stream (1009). Default: see ws_max_message_bytes",
    )

    shutdown_delay_s: float = Field(
        0.0, ge=0, description="on shutdown, /readyz is 503 this long before streams are finished and closed (1001)"
    )

    # -- security -----------------------------------------------------------------------------
    api_key: SecretStr | None = Field(
        None, description="when set, every call needs `Authorization: Bearer <key>` (or ?token= on the WebSocket)"
    )

    # -- live view (the page at /) ------------------------------------------------------------
    preview_max_fps: float = Field(
        4.0, gt=0, description="preview JPEGs encoded per second per session at most (only while a page watches it)"
    )
    preview_max_side: int = Field(480, ge=16, description="longest side of a preview JPEG in pixels (frames are only shrunk)")
    preview_jpeg_quality: int = Field(70, ge=10, le=100, description="JPEG quality of previews")
    preview_idle_off_s: float = Field(
        15.0, gt=0, description="preview switches itself off when no one fetched it for this long (a closed tab costs nothing)"
    )
    history_s: float = Field(60.0, gt=0, description="seconds of per-frame latency and score kept per session for the chart")
    demo_dir: Path | None = Field(None, description="folder of OTB-layout sequences the page can stream through a session")

    log_level: str = Field("info", description="uvicorn log level")

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_no_key(cls, value):
        # `BLURTRACK_API_KEY=` (set but empty) must not become a key that an empty header matches.
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return value or None

    @property
    def max_body_bytes(self) -> int:
        """HTTP body limit: a frame plus 64 KiB for the multipart framing, the box and the options."""
        return self.max_frame_bytes + 64 * 1024

    @property
    def ws_max_message_bytes(self) -> int:
        """The WebSocket layer's own cap (max_message_bytes when set). By default it sits above
        max_frame_bytes so that an oversized frame reaches our check and gets an error message
        while the stream goes on; only a message far past the limit makes the server drop the
        connection (close code 1009)."""
        if self.max_message_bytes is not None:
            return self.max_message_bytes
        return max(2 * self.max_frame_bytes, self.max_frame_bytes + 1024 * 1024)


def get_settings(**overrides) -> ServiceSettings:
    """Settings from the environment, with explicit values (e.g. CLI flags) on top; None means unset."""
    return ServiceSettings(**{k: v for k, v in overrides.items() if v is not None})
