"""The staged environment: the lock installed for ``/opt/env`` in a scratch folder.

Guarantees: ``stage_environment`` installs with the lock module (py-rattler in a
subprocess, never in this process) into a fresh folder under ``<cache>/staging`` (same
filesystem as the package cache, so installs are hardlinks), and ``compile_bytecode``
writes ``.pyc`` files that do not depend on the staging path, the clock or hash seeds
(``unchecked-hash`` invalidation, recorded path under /opt/env, ``PYTHONHASHSEED=0``),
cached by content (``pycompile``); every .pyc is written as a new file and renamed into
place, so files hardlinked into the package cache are never edited in place.
``check_server`` refuses an env that cannot serve JupyterHub.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from spawner.errors import LockstepError
from spawner.settings import ENV_PREFIX

PYCOMPILE = Path(__file__).with_name("pycompile.py")

Installer = Callable[[Path, Path], None]
"""``installer(lockfile, staging)``: install the lock's linux-64 packages for /opt/env."""


def default_installer(settings, progress: Callable[[str], None] | None = None) -> Installer:
    """An installer calling the lock module's ``install_lock`` with the site's settings."""

    def install(lockfile: Path, staging: Path) -> None:
        from spawner.lock.install import install_lock  # lazy: image modules import without it

        install_lock(
            lockfile,
            staging,
            platform="linux-64",
            target_prefix=ENV_PREFIX,
            mirrors=dict(settings.mirrors),
            cache_dir=settings.cache_path("pkgs"),
            progress=progress,
        )

    return install


def new_staging_dir(cache_root: Path) -> Path:
    root = Path(cache_root) / "staging"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="env-", dir=root))


def check_server(staging: Path, *, project: str) -> None:
    """Refuse an environment without ``bin/jupyterhub-singleuser``."""
    if not (Path(staging) / "bin" / "jupyterhub-singleuser").exists():
        raise LockstepError(
            f"project {project!r}: the locked environment has no bin/jupyterhub-singleuser, so "
            "its image could not start a JupyterHub server. Add jupyterhub-singleuser to "
            f"environments/{project}/environment.yml or c.Lockstep.server_packages and run "
            f"`lockstep lock environments/{project}`."
        )


def python_version(staging: Path) -> str | None:
    """``3.11`` when the env has python 3.11 (from ``conda-meta``), else None."""
    for path in sorted((Path(staging) / "conda-meta").glob("python-[0-9]*.json")):
        version = json.loads(path.read_text()).get("version", "")
        match = re.match(r"^(\d+)\.(\d+)", version)
        if match:
            return f"{match[1]}.{match[2]}"
    return None


def compile_bytecode(staging: Path, *, cache_dir: Path, timeout: float = 900) -> tuple[int, int]:
    """Compile ``lib/pythonX.Y`` with the env's own python (see ``pycompile``).

    Returns (sources, cache hits); (0, 0) when the env has no python.
    """
    staging = Path(staging)
    version = python_version(staging)
    python = staging / "bin" / f"python{version}"
    if version is None or not python.exists():
        return 0, 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CONDA"))}
    env.update(PYTHONHASHSEED="0", SOURCE_DATE_EPOCH="0")
    cmd = [str(python), "-I", "-B", str(PYCOMPILE), str(staging), ENV_PREFIX, str(cache_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise LockstepError(
            f"compiling the environment's bytecode failed ({proc.returncode}):\n"
            f"{(proc.stdout + proc.stderr)[-2000:]}"
        )
    total, hits = (int(n) for n in proc.stdout.split()[-2:])
    return total, hits
