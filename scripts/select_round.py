"""Apply the fine-tuning round's shipping rule to the rankings `finetune_round.sh` wrote.

    python scripts/select_round.py OUT [--tuning DIR]

The rule (from round 7; MODEL_CARD.md): for each shipped bundle, the round's candidate is the one
with the best DEV objective in its grid / gate ranking (OUT/tune-<config>.json, or for the ECA
tracker OUT/gate-bundle-<config>.json, the better of its two candidates). It replaces the shipped
bundle when its objective on the CONFIRM set (a second, larger DEV set that took no part in
choosing settings: OUT/confirm-<config>.json) beats the shipped bundle's on the same set
(DIR/confirm/<bundle>.json; DIR defaults to benchmarks/tuning). The grid's best is biased upward by
the choice among 18 noisy settings; the confirm number is not. The two confirm rankings must be on
the same set and from the same kind of host: the same bundle gives other boxes on a CPU with other
SIMD kernels (engine/evaluation/host.py), so a ranking from another host is re-made with
`finetune_round.sh confirm-shipped` first.
Prints one line per shipped bundle with its verdict (SHIP or keep); copies nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TUNING = Path(__file__).resolve().parents[1] / "benchmarks" / "tuning"
# shipped bundle -> {candidate config: its DEV rankings in OUT, the last stage's first (the aspect
# stage comes after tune and, for the ECA tracker, the gate after both)}
RULES = {
    "blurtrack-effnet-eca": {"tracker": ("gate-bundle-tracker.json",),
                             "tracker_newdeblur": ("gate-bundle-tracker_newdeblur.json",)},
    "blurtrack-effnet-noeca": {"tracker_noeca": ("aspect-tracker_noeca.json", "tune-tracker_noeca.json")},
    "blurtrack-alexnet": {"tracker_alexnet": ("aspect-tracker_alexnet.json", "tune-tracker_alexnet.json")},
}
# what must match between two confirm rankings for their objectives to be comparable
SPLIT_KEYS = ("split", "seed", "sequences", "frames")


def best(path: Path) -> dict:
    """The entry with the best objective in a `blurtrack tune` ranking."""
    ranking = json.loads(path.read_text())["ranking"]
    return max(ranking, key=lambda r: r["objective"])


# ... and what must match between the hosts they were made on
HOST_KEYS = ("cpu_model", "simd")


def split_of(path: Path) -> dict:
    data = json.loads(path.read_text())
    return {k: data.get(k) for k in SPLIT_KEYS}


def host_of(path: Path) -> dict | None:
    """The ranking's host signature, None for a ranking written before tune recorded it."""
    host = json.loads(path.read_text()).get("host")
    return {k: host.get(k) for k in HOST_KEYS} if host else None


def latest(out: Path, names: tuple[str, ...]) -> Path | None:
    """The first of the candidate's DEV rankings that exists in OUT."""
    return next((out / n for n in names if (out / n).is_file()), None)


def verdict(bundle: str, candidates: dict[str, tuple[str, ...]], out: Path, tuning: Path) -> str:
    found = {c: best(path) for c, names in candidates.items() if (path := latest(out, names))}
    if not found:
        wanted = ", ".join(n for names in candidates.values() for n in names)
        return f"{bundle}: no candidate ranking in {out} ({wanted}); run the tune / aspect / gate stages"
    config = max(found, key=lambda c: found[c]["objective"])
    dev = found[config]
    line = f"{bundle}: candidate {config} (DEV {dev['objective']:.4f}, {dev['settings']})"
    shipped_file, candidate_file = tuning / "confirm" / f"{bundle}.json", out / f"confirm-{config}.json"
    if not shipped_file.is_file():
        return f"{line}; no {shipped_file}: run `scripts/finetune_round.sh confirm-shipped OUT`"
    if not candidate_file.is_file():
        return f"{line}; no {candidate_file}: run `scripts/finetune_round.sh confirm OUT`"
    if split_of(shipped_file) != split_of(candidate_file):
        return f"{line}; {shipped_file} and {candidate_file} are on different sets ({split_of(shipped_file)} vs {split_of(candidate_file)})"
    if host_of(shipped_file) is None or host_of(shipped_file) != host_of(candidate_file):
        return (f"{line}; {shipped_file} and {candidate_file} come from different hosts ({host_of(shipped_file)} vs "
                f"{host_of(candidate_file)}): run `scripts/finetune_round.sh confirm-shipped OUT` on this host")
    shipped, candidate = best(shipped_file), best(candidate_file)
    decision = "SHIP" if candidate["objective"] > shipped["objective"] else "keep the shipped bundle"
    return (f"{line}; CONFIRM: shipped {shipped['objective']:.4f}, candidate {candidate['objective']:.4f} "
            f"(P@15 {candidate['precision@15']:.4f}, S@0.6 {candidate['success@0.6']:.4f}) -> {decision}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the fine-tuning round's shipping rule; copies nothing")
    parser.add_argument("out", type=Path, help="the round's folder, as given to finetune_round.sh")
    parser.add_argument("--tuning", type=Path, default=TUNING, help="where the shipped bundles' rankings are (default: benchmarks/tuning)")
    args = parser.parse_args(argv)
    for bundle, candidates in RULES.items():
        print(verdict(bundle, candidates, args.out, args.tuning))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
