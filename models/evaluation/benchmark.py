"""`blurtrack bench`: our tracker, its ablations and the peer trackers on the same sequences in one
run, scored with models.evaluation.metrics.

Trackers run interleaved, sequence by sequence (every tracker on sequence 1, then every tracker on
sequence 2, ...), so a slow phase of the host hits all of them alike and the speed ratios to the
reference tracker stay fair. Only `init` / `track` calls are timed, in every tracker.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from blurtrack.engine.errors import BlurtrackError, DatasetError
from blurtrack.engine.manifest import PRECISION_CHOICES, TrackerConfig
from blurtrack.engine.otb import Sequence, find_sequences
from blurtrack.models.evaluation import peers
from blurtrack.models.evaluation.runner import SequenceRun, evaluate, run_sequence
from blurtrack.models.evaluation.splits import BLURRED_CLIPS, split_clips

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).with_name("bench.toml")
DEBLUR_CHOICES = ("bundle", "on", "off", "auto")


@dataclass(frozen=True)
class TrackerSpec:
    name: str
    kind: str  # "bundle" | "opencv"
    label: str = ""
    bundle: str | None = None
    deblur: str = "bundle"
    precision: str = "auto"  # bundle rows: auto (the bundle's choice per network) | fp32 | int8
    missing: str = ""
    opencv: str | None = None  # for kind opencv: csrt | kcf | nanotrack | vittrack (default: the row's name)
    # bundle rows: tracker settings (engine.manifest.TrackerConfig) in place of the bundle's own
    tracker: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSpec:
    name: str
    kind: str  # "otb" | "synthetic"
    path: str | None = None
    # synthetic: the photo split; otb: "" for every sequence under path, or a split of the
    # real-train clips (models/evaluation/splits.py: train, select, holdout)
    split: str = ""
    blurred_only: bool = False  # otb split: only the clips with motion blur (splits.BLURRED_CLIPS)
    sequences: int = 20
    frames: int = 80
    seed: int = 0


@dataclass(frozen=True)
class BenchConfig:
    reference: str
    data: dict[str, DataSpec]
    trackers: list[TrackerSpec]


def load_config(path: Path | None = None) -> BenchConfig:
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        raw = tomllib.loads(path.read_text())
        data = {name: DataSpec(name=name, **spec) for name, spec in raw.get("data", {}).items()}
        trackers = [TrackerSpec(**spec) for spec in raw.get("trackers", [])]
    except (OSError, tomllib.TOMLDecodeError, TypeError) as exc:
        raise BlurtrackError(f"cannot read the bench config {path}: {exc}") from exc
    for t in trackers:
        bad_bundle = t.kind == "bundle" and (
            not t.bundle or t.deblur not in DEBLUR_CHOICES or t.precision not in PRECISION_CHOICES
        )
        if t.kind not in ("bundle", "opencv") or bad_bundle:
            raise BlurtrackError(
                f"bench config {path}: tracker {t.name!r} needs kind bundle (with bundle = NAME, deblur in {DEBLUR_CHOICES}, "
                f"precision in {PRECISION_CHOICES}) or opencv"
            )
        unknown = set(t.tracker) - set(TrackerConfig.model_fields)
        if unknown:
            raise BlurtrackError(
                f"bench config {path}: tracker {t.name!r} sets unknown tracker settings {sorted(unknown)}; "
                f"known: {', '.join(TrackerConfig.model_fields)}"
            )
    for d in data.values():
        if d.kind not in ("otb", "synthetic") or (d.kind == "otb" and not d.path):
            raise BlurtrackError(f"bench config {path}: data {d.name!r} needs kind otb (with path) or synthetic")
    return BenchConfig(reference=raw.get("reference", trackers[0].name if trackers else ""), data=data, trackers=trackers)


def select(names: list[str] | None, available: list[str], what: str) -> list[str]:
    if not names:
        return available
    unknown = [n for n in names if n not in available]
    if unknown:
        raise BlurtrackError(f"unknown {what} {', '.join(unknown)}: choose from {', '.join(available)}")
    return [n for n in available if n in names]


# -- data -------------------------------------------------------------------------------------
def prepare_data(spec: DataSpec, cache_dir: Path, shared_dir: Path) -> Path:
    """The OTB folder of a data set; the synthetic split is generated once and cached (make_split
    reuses a folder whose parameters match, so a cached split is never re-rendered)."""
    if spec.kind == "otb":
        root = Path(str(spec.path).format(shared=shared_dir)).expanduser()
        return split_folder(spec, root, cache_dir) if spec.split else root
    from blurtrack.models.synth import SYNTH_VERSION, make_split

    split = spec.split or "test"
    out = cache_dir / "synthetic" / f"{split}-v{SYNTH_VERSION}-n{spec.sequences}-f{spec.frames}-seed{spec.seed}"
    log.info("synthetic %s split: %s (rendered on first use)", split, out)
    return make_split(split, out, spec.sequences, seed=spec.seed, n_frames=spec.frames)


def split_folder(spec: DataSpec, root: Path, cache_dir: Path) -> Path:
    """A folder of links to the clips of one real-train split (or its blurred ones) under root."""
    names = [n for n in split_clips(spec.split) if not spec.blurred_only or n in BLURRED_CLIPS]
    folder = cache_dir / "splits" / spec.name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name in names:
        if not (root / name).is_dir():
            raise DatasetError(f"data set {spec.name}: clip {name} of split {spec.split} is not in {root}")
        (folder / name).symlink_to((root / name).resolve(), target_is_directory=True)
    return folder


# -- trackers ---------------------------------------------------------------------------------
@dataclass
class Contender:
    """A tracker row: how to run it on one sequence, or why it cannot run."""

    spec: TrackerSpec
    run: Callable[[Sequence, Callable[[int], None]], SequenceRun] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.run is not None and self.reason is None


def _bundle_contender(spec: TrackerSpec, pipelines: dict[tuple[str, str], Any], backend: str, threads: int) -> Contender:
    from blurtrack.engine.errors import ModelNotFoundError
    from blurtrack.engine.manifest import resolve_bundle_dir
    from blurtrack.engine.pipeline import Pipeline

    bundle = spec.bundle
    assert bundle is not None  # load_config refuses a bundle row without one
    try:
        resolve_bundle_dir(bundle)
    except ModelNotFoundError:
        return Contender(
            spec, reason=f"not available: bundle {spec.bundle!r} not found — {spec.missing or 'see `blurtrack models list`'}"
        )
    try:
        if (bundle, spec.precision) not in pipelines:
            pipelines[bundle, spec.precision] = Pipeline.from_bundle(
                bundle, backend=backend, threads=threads, precision=spec.precision
            )
    except BlurtrackError as exc:
        return Contender(spec, reason=f"not available: {exc}")
    pipeline = pipelines[bundle, spec.precision]
    deblur = None if spec.deblur == "bundle" else spec.deblur
    details = dict(pipeline.describe())
    details["deblur_mode"] = spec.deblur if deblur else f"bundle policy ({details.get('deblur_policy')})"
    if deblur in ("on", "auto") and not pipeline.has_deblur:
        return Contender(
            spec, details=details, reason=f"not available: bundle {spec.bundle} has no deblur network — {spec.missing}"
        )
    settings = None
    if spec.tracker:
        try:
            settings = TrackerConfig.model_validate({**pipeline.bundle.manifest.tracker.model_dump(), **spec.tracker})
        except ValidationError as exc:
            return Contender(spec, details=details, reason=f"not available: bad tracker settings {spec.tracker}: {exc}")
        details["tracker_settings"] = ", ".join(f"{k} {v:g}" for k, v in spec.tracker.items())

    def run(seq: Sequence, tick: Callable[[int], None]) -> SequenceRun:
        return run_sequence(pipeline.new_tracker(deblur=deblur, tracker_config=settings), seq, tick)

    return Contender(spec, run=run, details=details)


def _opencv_contender(spec: TrackerSpec, threads: int, cache_dir: Path, shared_dir: Path, setup: bool) -> Contender:
    name = spec.opencv or spec.name
    if name in peers.CONTRIB_TRACKERS:
        python = peers.peers_python(cache_dir)
        if python is None and setup:
            try:
                python = peers.setup_peers_venv(cache_dir)
            except BlurtrackError as exc:
                return Contender(spec, reason=f"not available: {exc}")
        if python is None:
            return Contender(
                spec, reason=f"not available: run `blurtrack bench --setup-peers` ({peers.CONTRIB_REQUIREMENT} in its own venv)"
            )
        details: dict[str, Any] = {
            "runs_in": "a subprocess in the peers venv",
            "python": str(python),
            "package": peers.CONTRIB_REQUIREMENT,
        }
    elif name in peers.MODEL_PEERS:
        import cv2

        factory, folder, _files = peers.MODEL_PEERS[name]
        if not hasattr(cv2, factory):
            return Contender(spec, reason=f"not available: this cv2 {cv2.__version__} has no {factory.removesuffix('_create')}")
        try:
            peers.peer_model_files(name, shared_dir)
        except BlurtrackError as exc:
            return Contender(spec, reason=f"not available: {exc}")
        python = None
        details = {
            "runs_in": "this process",
            "package": f"opencv {cv2.__version__}",
            "models": str(shared_dir / "peers" / folder),
        }
    else:
        known = ", ".join([*peers.CONTRIB_TRACKERS, *peers.MODEL_PEERS])
        return Contender(spec, reason=f"not available: no OpenCV tracker named {name!r} ({known})")
    details["threads"] = threads

    def run(seq: Sequence, tick: Callable[[int], None]) -> SequenceRun:
        runs, version = peers.run_peer(name, [seq], threads=threads, python=python, shared_dir=shared_dir, on_frame=tick)
        details["cv2_version"] = version
        return runs[0]

    return Contender(spec, run=run, details=details)


def build_contenders(
    specs: list[TrackerSpec], backend: str, threads: int, cache_dir: Path, shared_dir: Path, setup_peers: bool
) -> list[Contender]:
    pipelines: dict[tuple[str, str], Any] = {}
    out = []
    for spec in specs:
        if spec.kind == "bundle":
            out.append(_bundle_contender(spec, pipelines, backend, threads))
        else:
            out.append(_opencv_contender(spec, threads, cache_dir, shared_dir, setup_peers))
        if out[-1].reason:
            log.warning("%s: %s", spec.name, out[-1].reason)
    return out


# -- the run ----------------------------------------------------------------------------------
def warm_up(contenders: list[Contender], sequence: Sequence | None, frames: int = 4) -> None:
    """Run each tracker once on a few frames, untimed: the first inference of a freshly loaded
    network pays for memory allocation, which would otherwise land on one tracker's first sequence."""
    if sequence is None:
        return
    short = dataclasses.replace(sequence, frames=sequence.frames[:frames], groundtruth=sequence.groundtruth[:frames])
    for c in contenders:
        if c.run is not None and c.available:
            try:
                c.run(short, lambda n: None)
            except Exception:
                pass


def run_bench(
    contenders: list[Contender],
    datasets: dict[str, list[Sequence]],
    reference: str,
    progress: Any | None = None,
) -> dict[str, Any]:
    """Run every available contender on every sequence, interleaved; score; add speed ratios."""
    runs: dict[str, dict[str, list[SequenceRun]]] = {c.spec.name: {d: [] for d in datasets} for c in contenders}
    tick = progress.update if progress is not None else (lambda n: None)
    warm_up(contenders, next((seqs[0] for seqs in datasets.values() if seqs), None))
    for data_name, sequences in datasets.items():
        for sequence in sequences:
            for c in contenders:
                if c.run is None or not c.available:
                    continue
                if progress is not None:
                    progress.set_postfix_str(f"{data_name}/{sequence.name} {c.spec.name}", refresh=False)
                try:
                    runs[c.spec.name][data_name].append(c.run(sequence, tick))
                except Exception as exc:
                    if c.spec.kind == "bundle" and not isinstance(exc, BlurtrackError):
                        raise  # our own tracker failing is a bug to see, not a row to grey out
                    c.reason = f"failed on {data_name}/{sequence.name}: {exc}"
                    log.error("%s %s", c.spec.name, c.reason)

    rows = []
    for c in contenders:
        row: dict[str, Any] = {
            "name": c.spec.name,
            "label": c.spec.label,
            "kind": c.spec.kind,
            "available": c.available,
            "reason": c.reason,
            "details": c.details,
            "results": {},
        }
        if c.available:
            for data_name, sequences in datasets.items():
                row["results"][data_name] = evaluate(runs[c.spec.name][data_name], sequences)
        rows.append(row)
    # Speed is a ratio to the reference; if that row could not run, the first row that did stands in.
    if not any(r["name"] == reference and r["available"] for r in rows):
        reference = next((r["name"] for r in rows if r["available"]), reference)
    if any(r["available"] for r in rows):
        add_speed_ratios(rows, list(datasets), reference)
    return {"reference": reference, "trackers": rows, "runs": runs}


def add_speed_ratios(rows: list[dict[str, Any]], data_names: list[str], reference: str) -> None:
    """`speed_ratio` = FPS / the reference tracker's FPS on the same data in the same run."""
    ref = next((r for r in rows if r["name"] == reference and r["available"]), None)
    if ref is None:
        raise ValueError(f"reference tracker {reference!r} has no results")
    for data_name in data_names:
        ref_fps = ref["results"][data_name]["pooled"]["fps"]
        for row in rows:
            result = row["results"].get(data_name)
            if result is None:
                continue
            fps = result["pooled"]["fps"]
            result["pooled"]["speed_ratio"] = round(fps / ref_fps, 3) if fps and ref_fps else None


def load_datasets(specs: list[DataSpec], cache_dir: Path, shared_dir: Path) -> tuple[dict[str, list[Sequence]], dict[str, Any]]:
    datasets, info = {}, {}
    for spec in specs:
        start = time.perf_counter()
        folder = prepare_data(spec, cache_dir, shared_dir)
        sequences = find_sequences(folder)
        datasets[spec.name] = sequences
        info[spec.name] = {
            "kind": spec.kind,
            "path": str(folder),
            "sequences": len(sequences),
            "frames": sum(len(s) for s in sequences),
            "prepare_seconds": round(time.perf_counter() - start, 2),
        }
        if spec.kind == "synthetic":
            info[spec.name].update(split=spec.split or "test", seed=spec.seed, frames_per_sequence=spec.frames)
        elif spec.split:
            info[spec.name].update(split=spec.split, blurred_only=spec.blurred_only, clips=[s.name for s in sequences])
    return datasets, info
