"""lockstep itself as a conda package, built from a checkout (for the hub image's lock).

lockstep is not on conda-forge; the hub image installs it from a channel of its own. This
module copies what the wheel is made of (``pyproject.toml``, ``README.md``, ``spawner/``;
no ``__pycache__``) out of a checkout, runs ``pip wheel --no-deps`` on the copy (the
checkout is never written to) in a venv holding only the pinned build backend (made once,
cached under ``~/.cache/lockstep/venvs/``), and converts the wheel like any pinned wheel
(:mod:`.wheel_convert`).

Guarantees: two checkouts with the same files give byte-identical packages, whatever their
paths and mtimes (the converter reads file contents only and writes fixed metadata); the
wheel's build backend is pinned (``BUILD_PINS``), so its ``WHEEL``/``METADATA`` text does not
drift with PyPI. It needs PyPI (or a ``PIP_INDEX_URL`` mirror) once, for the build backend.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .conda_pkg import BuildInputMissing, PackageSpec
from .wheel_convert import convert_wheel

#: The build backend the wheel is built with (pyproject's build-system, pinned).
BUILD_PINS = ("setuptools==84.2.1", "wheel==0.45.1")
SOURCES = ("pyproject.toml", "README.md", "spawner")
VENVS_DIR = Path.home() / ".cache" / "lockstep" / "venvs"


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


def build_env(root: Path = VENVS_DIR) -> Path:
    """A venv with exactly ``BUILD_PINS`` (cached by them); returns its python.

    Built once in a temporary sibling and renamed into place (``python -m pip`` in it works
    from the new path), so wheels are then built offline, without build isolation."""
    key = hashlib.sha256("\n".join(BUILD_PINS).encode()).hexdigest()[:16]
    final = root / f"lockstep-wheel-{key}"
    python = final / "bin" / "python"
    if python.exists():
        return python
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
    try:
        steps = ([sys.executable, "-m", "venv", str(tmp)],
                 [str(tmp / "bin" / "python"), "-m", "pip", "install", "--quiet", *BUILD_PINS])
        for cmd in steps:
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                raise BuildInputMissing(
                    f"could not make the wheel-build venv ({' '.join(cmd[-3:])}):\n"
                    f"{result.stderr[-1500:]}\nIt needs PyPI or a PIP_INDEX_URL mirror for "
                    f"{', '.join(BUILD_PINS)}.")
        os.rename(tmp, final)
    except OSError:
        if not python.exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return python


def build_wheel(checkout: Path, work: Path) -> Path:
    """``pip wheel --no-deps`` of a copy of ``checkout``; returns the wheel's path."""
    src = copy_sources(Path(checkout), work / "src")
    env = {**os.environ, "SOURCE_DATE_EPOCH": "315532800"}
    cmd = [str(build_env()), "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
           "--no-index", "--quiet", "-w", str(work / "dist"), str(src)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wheels = sorted((work / "dist").glob("lockstep-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise BuildInputMissing(
            f"`pip wheel --no-deps` of {checkout} failed (exit {result.returncode}):\n"
            f"{result.stderr[-2000:]}"
        )
    return wheels[0]


def lockstep_spec(checkout: Path, work: Path) -> PackageSpec:
    """The conda package of the lockstep in ``checkout`` (built in ``work``)."""
    return convert_wheel(build_wheel(checkout, work), {})
