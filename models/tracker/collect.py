"""`python -m blurtrack.models.tracker.collect RUNS_DIR OUT_DIR`: one file per training run under RUNS_DIR
(`<run>.pt`: its config, metrics log and the weights snapshots from `--from` of the run on), small
enough to come back from a lent GPU machine. `python -m blurtrack.models.export --checkpoint <run>.pt
--snapshot N` exports one of them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def collect_run(run_dir: Path, start_fraction: float, max_bytes: float) -> dict:
    snapshots = sorted(run_dir.glob("snapshot_*.pt"))
    if not snapshots:
        raise SystemExit(f"{run_dir} holds no snapshot_*.pt: did the run reach its first checkpoint?")
    loaded = [torch.load(p, map_location="cpu", weights_only=False) for p in snapshots]
    last = loaded[-1]["iteration"]
    kept = {s["iteration"]: s["model"] for s in loaded if s["iteration"] >= start_fraction * last}
    size = sum(t.numel() * t.element_size() for t in loaded[-1]["model"].values())
    while len(kept) > 1 and len(kept) * size > max_bytes:  # the latest snapshots fit the size cap
        del kept[min(kept)]
    log = run_dir / "metrics.jsonl"
    metrics = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    return {"config": loaded[-1]["config"], "seed": loaded[-1]["seed"], "snapshots": kept, "metrics": metrics}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m blurtrack.models.tracker.collect", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, help="folder of run folders (each with snapshot_*.pt)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--from", dest="start", type=float, default=0.4, help="keep snapshots from this fraction of the run on")
    parser.add_argument("--max-mb", type=float, default=11.0, help="size cap of each run's file (default 11 MB)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for run_dir in sorted(p for p in args.runs.iterdir() if p.is_dir()):
        payload = collect_run(run_dir, args.start, args.max_mb * 1e6)
        torch.save(payload, args.out / f"{run_dir.name}.pt")
        print(f"{run_dir.name}: snapshots {sorted(payload['snapshots'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
