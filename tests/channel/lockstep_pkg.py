"""lockstep itself as a conda package, built from a checkout (for the hub image's lock).

lockstep is not on conda-forge; the hub image installs it from a channel of its own. This
module copies what the wheel is made of (``pyproject.toml``, ``README.md``, ``spawner/``;
no ``__pycache__``) out of a checkout, runs ``pip wheel --no-deps`` on the copy (the
checkout is never written to) and converts the wheel like any pinned wheel
(:mod:`.wheel_convert`).

Guarantees: two checkouts with the same files give byte-identical packages, whatever their
paths and mtimes (the converter reads file contents only and writes fixed metadata); the
wheel's build backend is pinned (``BUILD_PINS``), so its ``WHEEL``/``METADATA`` text does not
drift with PyPI. It needs PyPI (or a ``PIP_INDEX_URL`` mirror) for the build backend.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conda_pkg import BuildInputMissing, PackageSpec
from .wheel_convert import convert_wheel

#: The build backend the wheel is built with (pyproject's build-system, pinned).
BUILD_PINS = ("setuptools==84.2.1", "wheel==0.45.1")
SOURCES = ("pyproject.toml", "README.md", "spawner")


def copy_sources(checkout: Path, dest: Path) -> Path:
    """Copy the files the wheel is built from into ``dest`` (bytecode left out)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in SOURCES:
        src = checkout / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def build_wheel(checkout: Path, work: Path) -> Path:
    """``pip wheel --no-deps`` of a copy of ``checkout``; returns the wheel's path."""
    src = copy_sources(Path(checkout), work / "src")
    pins = work / "build-constraints.txt"
    pins.write_text("".join(f"{p}\n" for p in BUILD_PINS))
    env = {**os.environ, "PIP_CONSTRAINT": str(pins), "SOURCE_DATE_EPOCH": "315532800"}
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(work / "dist")]
    result = subprocess.run([*cmd, str(src)], capture_output=True, text=True, env=env)
    wheels = sorted((work / "dist").glob("lockstep-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise BuildInputMissing(
            f"`pip wheel --no-deps` of {checkout} failed (exit {result.returncode}):\n"
            f"{result.stderr[-2000:]}\nIt needs PyPI or a PIP_INDEX_URL mirror for "
            f"{', '.join(BUILD_PINS)}."
        )
    return wheels[0]


def lockstep_spec(checkout: Path, work: Path) -> PackageSpec:
    """The conda package of the lockstep in ``checkout`` (built in ``work``)."""
    return convert_wheel(build_wheel(checkout, work), {})
