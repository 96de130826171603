"""The staged environment: the lock installed for ``/opt/env`` in a scratch folder.

Guarantees: ``stage_environment`` installs with the lock module (py-rattler in a
subprocess, never in this process) into a fresh folder under ``<cache>/staging`` (same
filesystem as the package cache, so installs are hardlinks), refusing packages from
channels the site does not allow. Its bytecode is ``spawner.image.bytecode``'s job.
``check_server`` refuses an env that cannot serve JupyterHub.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from spawner.errors import LockstepError
from spawner.settings import ENV_PREFIX

REMOVING = ".removing-"
"""Prefix of a staging folder set aside for removal (``remove_later``)."""

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
    stale = time.time() - 3600  # a removal that was interrupted an hour ago or more
    for left in root.glob(f"{REMOVING}*"):
        with contextlib.suppress(OSError):
            if left.lstat().st_mtime < stale:
                remove_later(left)
    return Path(tempfile.mkdtemp(prefix="env-", dir=root))


def remove_later(folder: Path) -> None:
    """Remove a staging folder without waiting for it: renamed aside at once (nothing can
    mistake it for a live one), then unlinked by a detached ``rm -rf --one-file-system``
    (several times faster than ``shutil.rmtree`` on an environment's tens of thousands of
    files) that outlives this process, so a build returns as soon as its image is pushed.
    Where ``rm`` is missing, ``shutil.rmtree`` runs on a thread. Links are removed, never
    followed. ``new_staging_dir`` removes what an interrupted removal left."""
    folder = Path(folder)
    aside = folder if folder.name.startswith(REMOVING) else folder.with_name(REMOVING + folder.name)
    try:
        os.replace(folder, aside)
    except OSError:
        aside = folder  # already gone, or not renamable: remove it where it is
    rm = shutil.which("rm")
    if rm:
        subprocess.Popen(
            [rm, "-rf", "--one-file-system", "--", str(aside)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    else:
        threading.Thread(
            target=shutil.rmtree,
            args=(aside,),
            kwargs={"ignore_errors": True},
            name=f"remove {aside.name}",
        ).start()


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
