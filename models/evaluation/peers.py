"""Peer trackers for the benchmark: OpenCV CSRT and KCF (opencv-contrib, in their own venv, run in
a subprocess), NanoTrack v2 and VitTrack (cv2.TrackerNano, cv2.TrackerVit of the main package, run
in this process).

opencv-contrib-python-headless and the product's opencv-python-headless install the same `cv2`
module; whichever is installed last wins and uninstalling either breaks the other. So contrib
lives only in a venv under the cache folder (`blurtrack bench --setup-peers`), and the trackers
run there through models/evaluation/peer_worker.py, which imports nothing from blurtrack.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from blurtrack.engine.errors import BackendUnavailableError, ModelNotFoundError
from blurtrack.engine.otb import Sequence
from blurtrack.models.evaluation import peer_worker
from blurtrack.models.evaluation.runner import SequenceRun

log = logging.getLogger(__name__)

#: the contrib wheel of the same OpenCV release as the product's opencv-python-headless
CONTRIB_REQUIREMENT = "opencv-contrib-python-headless==5.0.0.93"
CONTRIB_TRACKERS = ("csrt", "kcf")
#: OpenCV trackers of the main package that run in this process on model files from the shared
#: folder: name -> (the cv2 factory, folder under shared/peers, {parameter: file name})
MODEL_PEERS = {
    "nanotrack": (
        "TrackerNano_create",
        "nanotrack/v2",
        {"backbone": "nanotrack_backbone_sim.onnx", "neckhead": "nanotrack_head_sim.onnx"},
    ),
    "vittrack": ("TrackerVit_create", "vittrack", {"net": "vitTracker.onnx"}),
}
WORKER = Path(peer_worker.__file__).resolve()


def default_cache_dir() -> Path:
    """$BLURTRACK_CACHE_DIR, else ~/.cache/blurtrack (where the MindSpore Lite runtime also goes)."""
    env = os.environ.get("BLURTRACK_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "blurtrack"


def peers_venv_dir(cache_dir: Path | None = None) -> Path:
    return (cache_dir or default_cache_dir()) / "peers-venv"


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def peers_python(cache_dir: Path | None = None) -> Path | None:
    """The peers venv's Python if it is set up with the pinned contrib package, else None."""
    venv = peers_venv_dir(cache_dir)
    marker = venv / "blurtrack-peers.json"
    python = _venv_python(venv)
    if not python.is_file() or not marker.is_file():
        return None
    try:
        if json.loads(marker.read_text()).get("requirement") != CONTRIB_REQUIREMENT:
            return None
    except json.JSONDecodeError:
        return None
    return python


def setup_peers_venv(cache_dir: Path | None = None, quiet: bool = True) -> Path:
    """Create (or refresh) the peers venv with the pinned contrib package; return its Python.
    Idempotent: a venv already holding the pinned version is reused as it is."""
    existing = peers_python(cache_dir)
    if existing is not None:
        return existing
    venv = peers_venv_dir(cache_dir)
    python = _venv_python(venv)
    log.info("creating the peer trackers' venv %s with %s", venv, CONTRIB_REQUIREMENT)
    try:
        if not python.is_file():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=quiet)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"] + (["-q"] if quiet else [])
        subprocess.run(pip + [CONTRIB_REQUIREMENT], check=True, capture_output=quiet, text=True)
        listing = subprocess.run([str(python), str(WORKER), "--list"], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or "").strip().splitlines()[-3:] if isinstance(exc.stderr, str) else []
        raise BackendUnavailableError(
            f"could not set up the peer trackers' venv {venv} ({' '.join(map(str, exc.cmd[:4]))} failed: {' | '.join(detail)}); "
            f"it needs PyPI access for {CONTRIB_REQUIREMENT}. Retry with `blurtrack bench --setup-peers`."
        ) from exc
    trackers = json.loads(listing.stdout)["trackers"]
    missing = [t for t in CONTRIB_TRACKERS if t not in trackers]
    if missing:
        raise BackendUnavailableError(f"{CONTRIB_REQUIREMENT} in {venv} lacks trackers {missing}; its cv2 has {trackers}")
    (venv / "blurtrack-peers.json").write_text(json.dumps({"requirement": CONTRIB_REQUIREMENT, "trackers": trackers}) + "\n")
    return python


def peer_model_files(tracker: str, shared_dir: Path) -> dict[str, str]:
    """The model files of an in-process OpenCV peer (MODEL_PEERS), by its parameter names."""
    _factory, folder_name, names = MODEL_PEERS[tracker]
    folder = shared_dir / "peers" / folder_name
    files = {key: folder / name for key, name in names.items()}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise ModelNotFoundError(
            f"{tracker} model files not found: {', '.join(missing)}; set BLURTRACK_SHARED_DIR to the shared folder"
        )
    return {key: str(p) for key, p in files.items()}


def _job(tracker: str, sequences: list[Sequence], threads: int, shared_dir: Path | None) -> dict:
    job = {
        "tracker": tracker,
        "threads": threads,
        "sequences": [
            {"name": s.name, "frames": [str(p) if p else None for p in s.frames], "init_box": list(s.init_box)} for s in sequences
        ],
    }
    if tracker in MODEL_PEERS:
        if shared_dir is None:
            raise ModelNotFoundError(f"{tracker} needs the shared folder with peers/{MODEL_PEERS[tracker][1]}")
        job["models"] = peer_model_files(tracker, shared_dir)
    return job


def _to_runs(result: dict) -> list[SequenceRun]:
    return [
        SequenceRun(
            name=r["name"],
            boxes=[tuple(b) if b is not None else None for b in r["boxes"]],
            seconds=float(r["seconds"]),
            frames=int(r["frames"]),
            timings=r["timings"],
            states=r["states"],
        )
        for r in result["sequences"]
    ]


def run_peer(
    tracker: str,
    sequences: list[Sequence],
    threads: int = 2,
    python: Path | None = None,
    shared_dir: Path | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> tuple[list[SequenceRun], str]:
    """Run an OpenCV tracker over the sequences; in this process when `python` is None, else in a
    subprocess of that interpreter. Returns the runs and the cv2 version that ran them."""
    job = _job(tracker, sequences, threads, shared_dir)
    progress = on_frame or (lambda n: None)
    if python is None:
        result = peer_worker.run_job(job, progress)
        return _to_runs(result), result["cv2_version"]
    with tempfile.TemporaryDirectory(prefix="blurtrack-peer-") as tmp:
        job_file, result_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
        job_file.write_text(json.dumps(job))
        # stderr goes to a file: a pipe left unread could fill up and stall the worker.
        with open(Path(tmp) / "stderr.txt", "w+") as err:
            proc = subprocess.Popen(
                [str(python), str(WORKER), str(job_file), str(result_file)],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                # The worker must see only its own venv's packages.
                env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("frames "):
                    progress(int(line.split()[1]))
            code = proc.wait()
            err.seek(0)
            stderr = err.read()
        if code != 0:
            raise BackendUnavailableError(f"peer tracker {tracker} failed in {python}: {stderr.strip()[-800:]}")
        result = json.loads(result_file.read_text())
    return _to_runs(result), result["cv2_version"]
