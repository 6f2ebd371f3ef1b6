"""Run OpenCV's trackers (CSRT, KCF from opencv-contrib; NanoTrack, VitTrack from the main package) over
sequences and time only their `init` / `update` calls.

This file imports nothing from blurtrack: the benchmark runs it as a script with the Python of a
separate venv that holds opencv-contrib-python-headless (that package and the product's
opencv-python-headless install the same `cv2` module, so they never share an environment), and
imports it in-process for NanoTrack and VitTrack, which the main package has.

    python peer_worker.py JOB.json RESULT.json      # prints "frames N" progress lines on stdout

JOB.json: {"tracker": "csrt"|"kcf"|"nanotrack"|"vittrack", "threads": 2,
           "models": {"backbone": PATH, "neckhead": PATH},   # nanotrack; vittrack: {"net": PATH}
           "sequences": [{"name": str, "frames": [PATH or null, ...], "init_box": [x, y, w, h]}]}
RESULT.json: {"cv2_version": str, "sequences": [{"name", "boxes": [[x, y, w, h] or null, ...],
              "seconds": float, "frames": int, "timings": [{"total": ms}, ...], "states": [...]}]}
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import cv2


def available_trackers() -> list[str]:
    names = []
    if hasattr(cv2, "TrackerCSRT_create") or hasattr(cv2, "TrackerCSRT"):
        names.append("csrt")
    if hasattr(cv2, "TrackerKCF_create") or hasattr(cv2, "TrackerKCF"):
        names.append("kcf")
    if hasattr(cv2, "TrackerNano_create"):
        names.append("nanotrack")
    if hasattr(cv2, "TrackerVit_create"):
        names.append("vittrack")
    return names


def create_tracker(name: str, job: dict[str, Any]):
    if name == "csrt":
        return cv2.TrackerCSRT_create()
    if name == "kcf":
        return cv2.TrackerKCF_create()
    if name == "nanotrack":
        params = cv2.TrackerNano_Params()
        params.backbone = job["models"]["backbone"]
        params.neckhead = job["models"]["neckhead"]
        return cv2.TrackerNano_create(params)
    if name == "vittrack":
        params = cv2.TrackerVit_Params()
        params.net = job["models"]["net"]
        return cv2.TrackerVit_create(params)
    raise ValueError(f"unknown OpenCV tracker {name!r}; this cv2 has {available_trackers()}")


def _int_box(box: list[float]) -> tuple[int, int, int, int]:
    # OpenCV trackers take an integer Rect; round the given box to whole pixels.
    x, y, w, h = box
    return int(round(x)), int(round(y)), max(1, int(round(w))), max(1, int(round(h)))


def track_sequence(name: str, job: dict[str, Any], sequence: dict[str, Any], progress: Callable[[int], None]) -> dict[str, Any]:
    frames = sequence["frames"]
    tracker = create_tracker(name, job)
    first = cv2.imread(frames[0], cv2.IMREAD_COLOR)
    if first is None:
        raise FileNotFoundError(f"cannot read the first frame {frames[0]}")
    init_box = _int_box(sequence["init_box"])
    start = time.perf_counter()
    tracker.init(first, init_box)
    seconds = time.perf_counter() - start
    progress(1)
    last = [float(v) for v in sequence["init_box"]]
    boxes: list[list[float] | None] = [last]
    timings: list[dict[str, float]] = []
    states: list[str | None] = []
    tracked = 1
    for path in frames[1:]:
        image = cv2.imread(path, cv2.IMREAD_COLOR) if path else None
        if image is None:
            boxes.append(None)
            states.append(None)
            progress(1)
            continue
        start = time.perf_counter()
        ok, box = tracker.update(image)
        elapsed = time.perf_counter() - start
        seconds += elapsed
        tracked += 1
        # A failed update keeps the last box: a lost tracker still answers with its best guess.
        if ok:
            last = [float(v) for v in box]
        boxes.append(last)
        states.append("tracking" if ok else "lost")
        timings.append({"total": elapsed * 1e3})
        progress(1)
    return {"name": sequence["name"], "boxes": boxes, "seconds": seconds, "frames": tracked, "timings": timings, "states": states}


def run_job(job: dict[str, Any], progress: Callable[[int], None] = lambda n: None) -> dict[str, Any]:
    previous = cv2.getNumThreads()
    cv2.setNumThreads(int(job.get("threads", 2)))
    try:
        results = [track_sequence(job["tracker"], job, seq, progress) for seq in job["sequences"]]
    finally:
        cv2.setNumThreads(previous)
    return {"cv2_version": cv2.__version__, "sequences": results}


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[1] == "--list":
        print(json.dumps({"cv2_version": cv2.__version__, "trackers": available_trackers()}))
        return 0
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        job = json.load(f)
    pending = 0

    def progress(n: int) -> None:
        # Batched so the parent's progress bar moves without a pipe write per frame.
        nonlocal pending
        pending += n
        if pending >= 10:
            print(f"frames {pending}", flush=True)
            pending = 0

    result = run_job(job, progress)
    if pending:
        print(f"frames {pending}", flush=True)
    with open(argv[2], "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
