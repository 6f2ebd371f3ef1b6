"""`python -m blurtrack.models.train` option handling (no torch needed)."""

from __future__ import annotations

import json

import pytest

from blurtrack.models.train import apply_overrides, main


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
