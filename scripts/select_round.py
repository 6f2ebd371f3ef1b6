"""Apply the fine-tuning round's shipping rule to the rankings `finetune_round.sh` wrote.

    python scripts/select_round.py OUT

A candidate replaces its shipped bundle when its best DEV objective beats the shipped bundle's
(same split, grid and gate; MODEL_CARD.md). The shipped numbers are the rankings committed in
benchmarks/tuning/; the ECA bundle's is its gate ranking, and each ECA candidate is judged by its
own gate ranking (OUT/gate-bundle-<config>.json), the better of the two being the one compared.
Prints one line per shipped bundle with its verdict (SHIP or keep); copies nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TUNING = Path(__file__).resolve().parents[1] / "benchmarks" / "tuning"
# shipped bundle -> (its committed ranking, the candidates' rankings in OUT)
RULES = {
    "blurtrack-effnet-eca": ("blurtrack-effnet-eca-gate.json", ["gate-bundle-tracker.json", "gate-bundle-tracker_newdeblur.json"]),
    "blurtrack-effnet-noeca": ("blurtrack-effnet-noeca.json", ["tune-tracker_noeca.json"]),
    "blurtrack-alexnet": ("blurtrack-alexnet.json", ["tune-tracker_alexnet.json"]),
}


def best(path: Path) -> dict:
    """The entry with the best objective in a `blurtrack tune` ranking."""
    ranking = json.loads(path.read_text())["ranking"]
    return max(ranking, key=lambda r: r["objective"])


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python scripts/select_round.py OUT (the round's folder, as given to finetune_round.sh)", file=sys.stderr)
        return 2
    out = Path(argv[0])
    for bundle, (shipped_file, candidate_files) in RULES.items():
        shipped = best(TUNING / shipped_file)
        found = [(best(out / f), f) for f in candidate_files if (out / f).is_file()]
        if not found:
            print(f"{bundle}: no candidate ranking in {out} ({', '.join(candidate_files)}); run the tune / gate stages")
            continue
        top, name = max(found, key=lambda item: item[0]["objective"])
        others = ", ".join(f"{f} {r['objective']:.4f}" for r, f in found if f != name)
        verdict = "SHIP" if top["objective"] > shipped["objective"] else "keep the shipped bundle"
        print(f"{bundle}: shipped {shipped['objective']:.4f}, candidate {name} {top['objective']:.4f} "
              f"(P@15 {top['precision@15']:.4f}, S@0.6 {top['success@0.6']:.4f}, {top['settings']})"
              + (f"; also {others}" if others else "") + f" -> {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
