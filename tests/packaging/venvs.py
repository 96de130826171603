"""Second virtualenvs for the suite: lockstep installed as a site installs it, not as CI does.

``kube_only_venv()`` gives a venv with JupyterHub 5.x and ``lockstep[kube]`` only (plus the
few tools that run the Kubernetes tests: pytest, pytest-asyncio, kmock, kubernetes-validate,
zstandard), pinned by ``constraints.txt`` with ``constraints-jupyterhub5.txt`` laid over it.

Guarantees: the venv is cached under ``~/.cache/lockstep/venvs/<key>``, the key being the
sha256 of every input (pyproject.toml, both constraints files, the tool list, the Python
version, uv's version), so a changed input builds a new one and an unchanged one is reused
in well under a second; a venv is built in a scratch folder and renamed into place only once
complete (``uv venv --relocatable``), under a file lock, so a crash or a second pytest never
leaves a half-built one. The build installs a copy of the package files (no ``build/`` in
the working tree); the tests then run the working tree's code (``pythonpath = ["."]``).

Must not: install docker, dockerspawner, py-rattler or conda-lock (the point of the venv),
touch the working tree, or import anything heavier than the standard library.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints.txt"
JUPYTERHUB5 = ROOT / "constraints-jupyterhub5.txt"
KUBE_TEST_TOOLS = ("pytest", "pytest-asyncio", "kmock", "kubernetes-validate", "zstandard")
KEY_VERSION = "2"  # bump when the build recipe below changes
BUILD_TIMEOUT_S = 600


class VenvBuildError(RuntimeError):
    """A second venv could not be built; the message says which step and how to fix it."""


def canonical_name(name: str) -> str:
    """PEP 503 normalisation: ``PyYAML`` == ``pyyaml``, ``conda_lock`` == ``conda-lock``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_name(line: str) -> str | None:
    """The package a constraints line pins (``name==version``), or None for any other line."""
    match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==", line)
    return canonical_name(match.group(1)) if match else None


def layer_constraints(base: str, overlay: str) -> str:
    """``base`` with each pin that ``overlay`` also pins replaced by the overlay's line;
    overlay pins of packages ``base`` lacks are added at the end. Comments are dropped."""
    over = {pinned_name(line): line.strip() for line in overlay.splitlines()}
    over.pop(None, None)
    kept = [line.strip() for line in base.splitlines()
            if (name := pinned_name(line)) is not None and name not in over]
    return "\n".join(sorted(kept + list(over.values()), key=str.lower)) + "\n"


def uv_binary() -> str:
    """The uv of the test extra (the ``uv`` wheel), else one on PATH."""
    try:
        from uv import find_uv_bin
        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise VenvBuildError(
                "uv is not installed: it comes with the test extra; run scripts/setup.sh "
                "(pip install -c constraints.txt -e '.[docker,kube,build,test]')") from None
        return found


def venv_key(uv: str) -> str:
    """The sha256 of everything that decides what the venv holds."""
    digest = hashlib.sha256(KEY_VERSION.encode())
    for path in (ROOT / "pyproject.toml", CONSTRAINTS, JUPYTERHUB5):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    uv_version = _run([uv, "--version"], step="uv --version").stdout.strip()
    for part in (*KUBE_TEST_TOOLS, sys.version, uv_version):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()[:20]


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lockstep" / "venvs"


def kube_only_venv() -> Path:
    """The cached JupyterHub 5 + ``lockstep[kube]`` venv, built first if missing."""
    uv = uv_binary()
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"kube-jh5-{venv_key(uv)}"
    if (final / ".complete").exists():
        return final
    with open(root / f"{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (final / ".complete").exists():  # another process may have built it
            shutil.rmtree(final, ignore_errors=True)
            _build(uv, final)
    return final


def _build(uv: str, final: Path) -> None:
    scratch = Path(tempfile.mkdtemp(prefix=f"{final.name}.", dir=final.parent))
    try:
        venv = scratch / "venv"
        env = uv_env()
        _run([uv, "venv", "--quiet", "--relocatable", "--python", sys.executable, str(venv)],
             step="uv venv", env=env)
        (scratch / "constraints.txt").write_text(
            layer_constraints(CONSTRAINTS.read_text(), JUPYTERHUB5.read_text()))
        source = _stage_source(scratch / "src")
        # bytecode at install: with PYTHONDONTWRITEBYTECODE set, imports would compile each run
        _run([uv, "pip", "install", "--quiet", "--compile-bytecode",
              "--python", str(venv / "bin" / "python"), "-c", str(scratch / "constraints.txt"),
              f"{source}[kube]", *KUBE_TEST_TOOLS],
             step="uv pip install .[kube]", env=env)
        freeze = _run([uv, "pip", "freeze", "--python", str(venv / "bin" / "python")],
                      step="uv pip freeze", env=env).stdout
        (venv / "freeze.txt").write_text(freeze)
        shutil.copy(scratch / "constraints.txt", venv / "constraints.txt")
        (venv / ".complete").write_text(final.name + "\n")
        venv.rename(final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _stage_source(into: Path) -> Path:
    """What a wheel of lockstep is built from, copied so setuptools' build/ stays out of
    the working tree."""
    into.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, into / name)
    shutil.copytree(ROOT / "spawner", into / "spawner",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return into


def uv_env() -> dict[str, str]:
    """The environment for uv: never download a Python; a site's pip index applies to uv."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    if "PIP_INDEX_URL" in env and "UV_DEFAULT_INDEX" not in env:
        env["UV_DEFAULT_INDEX"] = env["PIP_INDEX_URL"]
    return env


def _run(cmd: list[str], *, step: str, env: dict[str, str] | None = None):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise VenvBuildError(f"{step} ran past {BUILD_TIMEOUT_S} s: is the package index "
                             "reachable? (set PIP_INDEX_URL or UV_DEFAULT_INDEX)") from None
    if proc.returncode != 0:
        raise VenvBuildError(
            f"{step} failed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}\n"
            "If a version cannot be found, check the pins in constraints.txt and "
            "constraints-jupyterhub5.txt against pyproject.toml's ranges; if the index "
            "cannot be reached, set PIP_INDEX_URL or UV_DEFAULT_INDEX.")
    return proc
