"""`blurtrack serve` as a user runs it: a real process, its flags, its refusal of a missing bundle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

from .conftest import free_port, serve_process


def test_serve_missing_bundle_says_so():
    done = subprocess.run(
        [sys.executable, "-m", "blurtrack", "serve", "--bundle", "no-such-bundle", "--backend", "onnxruntime"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no model bundle 'no-such-bundle'" in done.stderr and "--bundle" in done.stderr


def test_serve_mslite_without_ms_files_says_what_to_run(test_bundle):
    done = subprocess.run(
        [sys.executable, "-m", "blurtrack", "serve", "--bundle", str(test_bundle), "--backend", "mslite"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    # where MindSpore Lite is set up the bundle lacks .ms files; elsewhere the runtime is missing
    assert "blurtrack models convert" in done.stderr or "blurtrack setup mslite" in done.stderr, done.stderr


def test_serve_runs_until_interrupted(test_bundle):
    env = {**os.environ, "BLURTRACK_MAX_SESSIONS": "3"}
    process, url = serve_process(test_bundle, free_port(), "--workers", "1", "--threads", "1", env=env)
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            ready = json.load(response)
        assert ready["ready"] and ready["backend"]["backend"] == "onnxruntime"
        with urllib.request.urlopen(f"{url}/v1/sessions", timeout=5) as response:
            assert json.load(response)["max_sessions"] == 3  # the environment setting reached the app
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "running open" in output
