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


CONFIRM = {"split": "dev", "seed": 1, "sequences": 60, "frames": 80}


HOST = {"machine": "Intel(R) Xeon(R) Processor, 2 cores, Linux", "cpu_model": "Intel(R) Xeon(R) Processor", "simd": "avx2 avx512f"}


def _ranking(path, *objectives, split=None, host=HOST):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**(split or {}), **({"host": host} if host else {}), "ranking": [
        {"settings": {"lr": 0.1 * i}, "precision@15": o, "success@0.6": o, "objective": o} for i, o in enumerate(objectives)]}))


def _select(out, tuning):
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "scripts" / "select_round.py"
    result = subprocess.run([sys.executable, str(script), str(out), "--tuning", str(tuning)], capture_output=True, text=True, check=True)
    return {line.split(":")[0]: line for line in result.stdout.splitlines()}


def test_round_selection_chooses_on_dev_and_ships_on_the_confirm_set(tmp_path):
    """scripts/select_round.py: the candidate is the better one on DEV, even where the other does
    better on CONFIRM; it ships only when its CONFIRM objective beats the shipped one's (a tie keeps)."""
    out, tuning = tmp_path / "round", tmp_path / "tuning"
    _ranking(out / "gate-bundle-tracker.json", 0.80)
    _ranking(out / "gate-bundle-tracker_newdeblur.json", 0.79, 0.82)
    _ranking(out / "confirm-tracker.json", 0.90, split=CONFIRM)
    _ranking(out / "confirm-tracker_newdeblur.json", 0.86, split=CONFIRM)
    _ranking(tuning / "confirm" / "blurtrack-effnet-eca.json", 0.85, split=CONFIRM)
    _ranking(out / "tune-tracker_noeca.json", 0.95)
    _ranking(out / "aspect-tracker_noeca.json", 0.93, 0.96)  # the aspect stage's ranking, when there, is the last DEV word
    _ranking(out / "confirm-tracker_noeca.json", 0.84, split=CONFIRM)
    _ranking(tuning / "confirm" / "blurtrack-effnet-noeca.json", 0.84, split=CONFIRM)
    lines = _select(out, tuning)
    assert lines["blurtrack-effnet-eca"].split("(")[0].strip().endswith("tracker_newdeblur")
    assert lines["blurtrack-effnet-eca"].endswith("SHIP")
    assert lines["blurtrack-effnet-noeca"].endswith("keep the shipped bundle")
    assert "DEV 0.9600" in lines["blurtrack-effnet-noeca"]
    assert "no candidate ranking" in lines["blurtrack-alexnet"]


def test_round_selection_refuses_to_compare_confirm_rankings_on_different_sets(tmp_path):
    out, tuning = tmp_path / "round", tmp_path / "tuning"
    _ranking(out / "tune-tracker_alexnet.json", 0.6)
    _ranking(out / "confirm-tracker_alexnet.json", 0.9, split={**CONFIRM, "seed": 0})
    _ranking(tuning / "confirm" / "blurtrack-alexnet.json", 0.5, split=CONFIRM)
    line = _select(out, tuning)["blurtrack-alexnet"]
    assert "different sets" in line and "SHIP" not in line
    (out / "confirm-tracker_alexnet.json").unlink()
    assert "run `scripts/finetune_round.sh confirm OUT`" in _select(out, tuning)["blurtrack-alexnet"]


def test_round_selection_refuses_to_compare_confirm_rankings_from_different_hosts(tmp_path):
    """The same bundle tracks differently on a CPU with other SIMD kernels: such rankings must not decide."""
    out, tuning = tmp_path / "round", tmp_path / "tuning"
    _ranking(out / "tune-tracker_alexnet.json", 0.6)
    _ranking(out / "confirm-tracker_alexnet.json", 0.9, split=CONFIRM)
    _ranking(tuning / "confirm" / "blurtrack-alexnet.json", 0.5, split=CONFIRM, host={**HOST, "cpu_model": "AMD EPYC", "simd": "avx2"})
    line = _select(out, tuning)["blurtrack-alexnet"]
    assert "different hosts" in line and "confirm-shipped" in line and "SHIP" not in line
    _ranking(tuning / "confirm" / "blurtrack-alexnet.json", 0.5, split=CONFIRM, host=None)  # written before hosts were recorded
    assert "different hosts" in _select(out, tuning)["blurtrack-alexnet"]
    _ranking(tuning / "confirm" / "blurtrack-alexnet.json", 0.5, split=CONFIRM, host={**HOST, "machine": "renamed"})
    assert _select(out, tuning)["blurtrack-alexnet"].endswith("SHIP")
