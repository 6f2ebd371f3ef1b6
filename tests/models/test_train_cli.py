"""`python -m models.train` option handling (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.train import apply_overrides, main


def test_set_overrides_nested_entries_with_json_values():
    config = {"train": {"lr": 0.001, "batch_size": 16}, "name": "x"}
    apply_overrides(config, ["train.lr=0.0003", "net.eca=false", "synth.root=/tmp/some dir", "name=y"])
    assert config["train"] == {"lr": 0.0003, "batch_size": 16}
    assert config["net"] == {"eca": False}
    assert config["synth"]["root"] == "/tmp/some dir"  # not JSON: kept as the string
    assert config["name"] == "y"


@pytest.mark.parametrize("bad", ["train.lr", "=3", "name.part=1"])
def test_bad_overrides_are_refused_with_the_expected_form(bad):
    with pytest.raises(ValueError, match="--set"):
        apply_overrides({"name": "x"}, [bad])


def test_the_command_reports_a_bad_override_and_exits_2(tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"task": "tracker", "name": "x"}))
    assert main(["--config", str(config), "--out", str(tmp_path / "out"), "--set", "train.lr"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def _ranking(path, *objectives):
    path.write_text(json.dumps({"ranking": [
        {"settings": {"lr": 0.1 * i}, "precision@15": o, "success@0.6": o, "objective": o} for i, o in enumerate(objectives)]}))


def test_round_selection_ships_only_candidates_that_beat_the_committed_rankings(tmp_path):
    """scripts/select_round.py: the better ECA candidate is the one compared; a tie keeps the bundle."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    tuning = repo / "benchmarks" / "tuning"
    shipped = {name: max(r["objective"] for r in json.loads((tuning / f).read_text())["ranking"])
               for name, f in [("eca", "blurtrack-effnet-eca-gate.json"), ("noeca", "blurtrack-effnet-noeca.json")]}
    _ranking(tmp_path / "gate-bundle-tracker.json", shipped["eca"] - 0.01)
    _ranking(tmp_path / "gate-bundle-tracker_newdeblur.json", shipped["eca"] - 0.02, shipped["eca"] + 0.005)
    _ranking(tmp_path / "tune-tracker_noeca.json", shipped["noeca"])
    out = subprocess.run([sys.executable, str(repo / "scripts" / "select_round.py"), str(tmp_path)], capture_output=True, text=True, check=True).stdout
    lines = {line.split(":")[0]: line for line in out.splitlines()}
    assert "gate-bundle-tracker_newdeblur.json" in lines["blurtrack-effnet-eca"].split("candidate")[1].split("(")[0]
    assert lines["blurtrack-effnet-eca"].endswith("SHIP")
    assert lines["blurtrack-effnet-noeca"].endswith("keep the shipped bundle")
    assert "no candidate ranking" in lines["blurtrack-alexnet"]
