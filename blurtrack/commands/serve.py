"""`blurtrack serve`: run the streaming tracking service (HTTP + WebSocket) under uvicorn.

Flags override `BLURTRACK_*` variables; the API key is read only from BLURTRACK_API_KEY (a flag
would show in the process list).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from blurtrack.engine.manifest import PRECISION_CHOICES
from blurtrack.engine.runtime import BACKEND_NAMES

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="interface to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default 8000)")
    parser.add_argument(
        "--bundle", default=None, help="model bundle: a name under BLURTRACK_MODELS_DIR or a folder with manifest.json"
    )
    parser.add_argument("--backend", default=None, choices=BACKEND_NAMES, help="inference runtime (default auto)")
    parser.add_argument(
        "--precision", default=None, choices=PRECISION_CHOICES, help="network precision (default auto: the bundle's choice)"
    )
    parser.add_argument("--workers", type=int, default=None, help="inference worker threads (default: CPUs + 1)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads per model session (default 1)")
    parser.add_argument("--max-sessions", type=int, default=None, help="live sessions at most (default 64)")
    parser.add_argument(
        "--idle-timeout", type=float, default=None, dest="idle_timeout_s", help="seconds before an idle session ends (default 60)"
    )
    parser.add_argument(
        "--demo-dir",
        type=Path,
        default=None,
        help="folder of OTB-layout sequences (<seq>/img/*.jpg + groundtruth_rect.txt) the live page at / can stream as a demo",
    )
    parser.add_argument("--log-level", default=None, choices=("critical", "error", "warning", "info", "debug"))


def run(args: argparse.Namespace) -> int:
    from blurtrack.engine.errors import ModelNotFoundError
    from blurtrack.engine.manifest import load_bundle, resolve_bundle_dir
    from blurtrack.engine.runtime import get_backend
    from blurtrack.service.config import get_settings
    from blurtrack.service.server import serve

    settings = get_settings(
        host=args.host,
        port=args.port,
        bundle=args.bundle,
        backend=args.backend,
        precision=args.precision,
        workers=args.workers,
        threads=args.threads,
        max_sessions=args.max_sessions,
        idle_timeout_s=args.idle_timeout_s,
        demo_dir=args.demo_dir,
        log_level=args.log_level,
    )
    logging.getLogger().setLevel(settings.log_level.upper())  # --log-level covers our loggers too
    # Fail here, with the engine's message, rather than start a server that never gets ready.
    bundle_dir = resolve_bundle_dir(settings.bundle)
    if settings.backend != "auto":
        get_backend(settings.backend, threads=settings.threads)  # raises BackendUnavailableError
    if settings.backend == "mslite" and not load_bundle(bundle_dir).has_ms_files():
        raise ModelNotFoundError(
            f"bundle {bundle_dir} has no .ms files for MindSpore Lite: run `blurtrack models convert {bundle_dir}`"
        )
    if settings.demo_dir is not None:
        from blurtrack.engine.otb import find_sequences

        demos = find_sequences(settings.demo_dir)  # DatasetError (exit 2) says what the folder must hold
        log.info("demo sequences from %s: %s", settings.demo_dir, ", ".join(s.name for s in demos))
    log.info(
        "serving bundle %s (backend %s) with %d worker threads at http://%s:%d (live view at /, API docs at /docs)",
        bundle_dir,
        settings.backend,
        settings.workers,
        settings.host,
        settings.port,
    )
    serve(settings.model_copy(update={"bundle": str(bundle_dir)}))
    return 0
