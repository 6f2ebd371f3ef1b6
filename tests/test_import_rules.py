"""The rooms' import rules (docs/ARCHITECTURE.md): the runtime (blurtrack.engine, blurtrack.service
and the `serve` / `setup` commands) never imports the tools (blurtrack.models: training,
evaluation, data generation, test fixtures) nor torch; the client imports none of blurtrack's other
rooms. Each room is imported in a fresh interpreter, module by module, and sys.modules is read
after each one, so a failure names the module that pulled the forbidden one in."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_CHECK = """
import importlib, importlib.util, json, os, pkgutil, sys

def walk(name, paths):
    # Lists a package's modules from its folders without importing any (walk_packages would).
    yield name
    for info in pkgutil.iter_modules(paths):
        child = name + "." + info.name
        if info.ispkg:
            yield from walk(child, [os.path.join(p, info.name) for p in paths])
        else:
            yield child

roots, extra, forbidden = json.loads(sys.argv[1])
names = []
for root in roots:
    names += walk(root, list(importlib.util.find_spec(root).submodule_search_locations))
names += extra
found = {}
for name in names:
    importlib.import_module(name)
    for loaded in list(sys.modules):
        if any(loaded == f or loaded.startswith(f + ".") for f in forbidden):
            found.setdefault(loaded, name)
print(json.dumps({"checked": names, "found": found}))
"""

RUNTIME_FORBIDDEN = ["blurtrack.models", "torch", "torchvision"]

ROOMS = {
    "runtime": (
        ["blurtrack.engine", "blurtrack.service"],
        ["blurtrack.cli", "blurtrack.commands.serve", "blurtrack.commands.setup"],
        RUNTIME_FORBIDDEN,
    ),
    "client": (["blurtrack.clients"], [], ["blurtrack.engine", "blurtrack.service", "blurtrack.models", "torch"]),
}


def imports_of(roots: list[str], extra: list[str], forbidden: list[str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _CHECK, json.dumps([roots, extra, forbidden])], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("room", sorted(ROOMS))
def test_room_imports_only_what_it_may(room):
    report = imports_of(*ROOMS[room])
    assert len(report["checked"]) > 3, report["checked"]  # the walk found the room's modules
    pulled_in = [f"{module} (first imported by {by})" for module, by in sorted(report["found"].items())]
    assert not pulled_in, f"{room} imports what it must not: " + "; ".join(pulled_in)


def test_the_check_sees_a_forbidden_import():
    """The same check on a room that does import the tools reports them (so a pass means something)."""
    report = imports_of([], ["blurtrack.models.evaluation.runner"], RUNTIME_FORBIDDEN)
    assert "blurtrack.models.evaluation.runner" in report["found"]
