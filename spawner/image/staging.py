"""The staged environment: the lock installed for ``/opt/env`` in a scratch folder.

Guarantees: ``stage_environment`` installs with the lock module (py-rattler in a
subprocess, never in this process) into a fresh folder under ``<cache>/staging`` (same
filesystem as the package cache, so installs are hardlinks), refusing packages from
channels the site does not allow; ``compile_bytecode`` writes ``.pyc`` files that do not
depend on the staging path, the clock or hash seeds (``unchecked-hash`` invalidation,
recorded path under /opt/env, ``PYTHONHASHSEED=0``), cached by content (``pyccache``). The
environment's own python (package code) runs only inside the build sandbox
(``spawner.image.sandbox``: bubblewrap, no network, empty environment, staging read-only);
every .pyc is written by the host as a new file renamed into place, so files hardlinked
into the package cache are never edited in place.
``check_server`` refuses an env that cannot serve JupyterHub.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from spawner.errors import LockstepError
from spawner.image import pyccache
from spawner.image.sandbox import require_sandbox, sandboxed
from spawner.settings import ENV_PREFIX

PYCOMPILE = Path(__file__).with_name("pycompile.py")

Installer = Callable[..., None]
"""``installer(lockfile, staging)``: install the lock's linux-64 packages for /opt/env;
another image platform's is asked for with ``installer(lockfile, staging, platform=...)``."""


def default_installer(settings, progress: Callable[[str], None] | None = None) -> Installer:
    """An installer calling the lock module's ``install_lock`` with the site's settings."""

    def install(lockfile: Path, staging: Path, platform: str = "linux-64") -> None:
        from spawner.lock.install import install_lock  # lazy: image modules import without it
        from spawner.lock.policy import ChannelPolicy

        install_lock(
            lockfile,
            staging,
            platform=platform,
            target_prefix=ENV_PREFIX,
            mirrors=dict(settings.mirrors),
            cache_dir=settings.cache_path("pkgs"),
            progress=progress,
            channels=ChannelPolicy.from_settings(settings),
            sdist_sandbox=settings.build_sandbox if settings.pip_allow_sdists else None,
        )

    return install


def new_staging_dir(cache_root: Path) -> Path:
    root = Path(cache_root) / "staging"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="env-", dir=root))


def remove_later(folder: Path) -> threading.Thread:
    """Start removing a staging folder on a thread (join it to wait): ``rm -rf`` unlinks an
    environment's tens of thousands of files several times faster than ``shutil.rmtree``
    (which is used where ``rm`` is missing or fails); links are removed, never followed."""

    def remove() -> None:
        rm = shutil.which("rm")
        if rm:
            subprocess.run(
                [rm, "-rf", "--one-file-system", "--", str(folder)],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(folder, ignore_errors=True)

    thread = threading.Thread(target=remove, name=f"remove {Path(folder).name}")
    thread.start()
    return thread


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


def compile_bytecode(
    staging: Path,
    *,
    cache_dir: Path,
    sandbox: str = "bwrap",
    timeout: float = 900,
    jobs: int | None = None,
    interpreter: Path | None = None,
    tests: bool = True,
) -> tuple[int, int]:
    """Compile ``lib/pythonX.Y`` with the env's own python, inside the build sandbox.

    ``interpreter``: another staged env whose python (same ``major.minor``, checked by the
    caller: ``index.compile_plan``) compiles this one's sources, for a platform this host
    cannot run; its .pyc cache is shared, since the bytes are the same.
    Cache hits are copied by the host (``pyccache``); the misses are compiled by
    ``pycompile`` run as ``python -I -S -B`` under ``sandbox`` (``"bwrap"``, or ``"none"``:
    unsafe) with the staging folder read-only and only a fresh output folder writable;
    the host then moves the results into place and into the cache.
    ``tests=False`` leaves packages' test suites (``pyccache.is_test_source``) without
    .pyc files (``c.Lockstep.compile_test_bytecode``).
    Returns (sources, cache hits); (0, 0) when the env has no python.
    """
    staging = Path(staging)
    version = python_version(staging)
    runner = Path(interpreter) if interpreter is not None else staging
    python = runner / "bin" / f"python{version}"
    if version is None or not python.exists():
        return 0, 0
    bwrap = require_sandbox(sandbox)
    tag = "cpython-" + version.replace(".", "")
    cache = Path(cache_dir) / pyccache.interpreter_identity(runner, version)
    total, missing = pyccache.serve_hits(
        staging, version, cache=cache, prefix=ENV_PREFIX, tag=tag, tests=tests
    )
    if missing:
        out = Path(tempfile.mkdtemp(prefix="pyc-", dir=staging.parent))
        try:
            _run_pycompile(python, staging, out, missing, bwrap=bwrap, timeout=timeout,
                           jobs=jobs, runner=runner)
            pyccache.take_compiled(out, staging, missing, cache=cache, tag=tag)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    return total, total - len(missing)


def _run_pycompile(python, staging, out, missing, *, bwrap, timeout, jobs, runner) -> None:
    jobs = jobs or os.cpu_count() or 1
    script = "/run/lockstep/pycompile.py" if bwrap else str(PYCOMPILE)
    command = [str(python), "-I", "-S", "-B", script, str(staging), ENV_PREFIX, str(out), str(jobs)]
    argv, env = sandboxed(
        command,
        bwrap=bwrap,
        read_only=[staging, *([runner] if runner != staging else []), (PYCOMPILE, script)],
        writable=[out],
        env={"PYTHONHASHSEED": "0", "SOURCE_DATE_EPOCH": "0"},
    )
    listing = "".join(f"{item.relative}\n" for item in missing)
    try:
        proc = subprocess.run(
            argv, env=env, input=listing, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise LockstepError(
            f"compiling the environment's bytecode took more than {timeout:.0f} s and was "
            "stopped; a package may be hostile or broken (check the lock's recent changes)."
        ) from None
    if proc.returncode != 0:
        where = "in the build sandbox (bwrap) " if bwrap else ""
        hint = (
            " If bwrap itself could not start (e.g. 'creating new namespace' above), the "
            "build host must allow user namespaces (sysctl kernel.unprivileged_userns_clone=1"
            "; on Ubuntu 24.04 an AppArmor profile for bwrap)." if bwrap else ""
        )
        raise LockstepError(
            f"compiling the environment's bytecode {where}failed ({proc.returncode}); the "
            f"environment's python did not run cleanly, so its image was not built.{hint}\n"
            f"{(proc.stdout + proc.stderr)[-2000:]}"
        )
