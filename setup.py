"""Maps the top-level folders onto subpackages of the one installed package, `blurtrack`
(engine/ -> blurtrack.engine, ...). Everything else is in pyproject.toml; this lives here because
pyproject's `packages.find` cannot give a folder a package name other than its own."""

from setuptools import find_packages, setup

ROOMS = ("engine", "service", "models", "clients")

package_dir = {"blurtrack": "blurtrack"}
packages = find_packages(include=["blurtrack", "blurtrack.*"])
for room in ROOMS:
    package_dir[f"blurtrack.{room}"] = room
    packages += [f"blurtrack.{name}" for name in find_packages(include=[room, f"{room}.*"])]

setup(package_dir=package_dir, packages=packages)
