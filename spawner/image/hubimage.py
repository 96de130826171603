"""The hub image: JupyterHub, KubeSpawner, lockstep and the authenticators, from a lock.

The hub runs in the image lockstep's own daemonless builder makes for every project
(``spawner.image.build``): ``images/hub/environment.yml`` is solved into
``images/hub/conda-lock.yml`` (:func:`lock_hub`: no notebook-server packages added) and
built on the lockstep base image (:class:`HubBuilder`), so the hub is reproducible (the
same lock and base give the same digest on any machine) and is referenced by digest like
every other image. Only the runtime differs from a project image (:func:`hub_runtime`):
``jupyterhub --config /usr/local/etc/jupyterhub/jupyterhub_config.py`` under ``tini``, as
uid 1000 (gid 100, never root), in ``/srv/jupyterhub`` (the hub's state claim in both
charts; the sqlite database and cookie secret are written there), port 8081.

Guarantees: :func:`hub_runtime` is pure; a hub build never shares a build record with a
project build of the same lock (its index key is salted); nothing here starts a container
or a hub. It must not add runtime behaviour to project images.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path

from spawner.image import oci
from spawner.image.base import BaseImage
from spawner.image.build import Builder, BuildResult
from spawner.labels import BASE, LOCK_HASH, PROJECT
from spawner.settings import ENV_PREFIX

HUB_CONFIG = "/usr/local/etc/jupyterhub/jupyterhub_config.py"
"""Where both charts mount the hub's configuration (z2jh runs exactly this command)."""
HUB_WORKDIR = "/srv/jupyterhub"
HUB_CMD = ("jupyterhub", "--config", HUB_CONFIG)
HUB_PORT = "8081/tcp"
_SALT = "lockstep-hub-image-1"


def hub_runtime(*, name: str, lock_hash: str, base: str) -> oci.RuntimeSpec:
    """The hub image's config: non-root, the hub's command, /opt/env first on PATH."""
    return oci.RuntimeSpec(
        user=oci.USER,
        workdir=HUB_WORKDIR,
        env={
            "CONDA_PREFIX": ENV_PREFIX,
            "HOME": oci.HOME,
            "LANG": "C.UTF-8",
            "PATH": oci.PATH,
            "PYTHONUNBUFFERED": "1",
        },
        entrypoint=("/usr/bin/tini", "-g", "--"),
        cmd=HUB_CMD,
        labels={PROJECT: name, LOCK_HASH: lock_hash, BASE: base},
        exposed_ports=(HUB_PORT,),
    )


def hub_index_key(key: str) -> str:
    """The build-index key of a hub build: never equal to a project build's."""
    return hashlib.sha256(f"{_SALT}\0{key}".encode()).hexdigest()


class HubBuilder(Builder):
    """``Builder`` with the hub's runtime; the image is ``<registry>/<folder name>``."""

    def runtime(self, lock_hash: str, base: BaseImage, platform: str = "") -> oci.RuntimeSpec:
        return hub_runtime(name=self.name, lock_hash=lock_hash, base=base.digest)

    def _known(self, key: str) -> dict | None:
        return super()._known(hub_index_key(key))

    def _finish(self, key: str, result: BuildResult) -> BuildResult:
        return super()._finish(hub_index_key(key), result)


def lock_hub(folder: Path, settings, *, progress: Callable[[str], None] | None = None):
    """Solve ``folder/environment.yml`` into ``conda-lock.yml`` with the site's channels,
    adding no server packages (a hub serves no notebooks). Returns the ``LockResult``."""
    from spawner.lock.locking import LockInputs, lock_environment

    inputs = dataclasses.replace(LockInputs.from_settings(settings), server_packages=())
    return lock_environment(Path(folder), inputs, progress=progress)


def build_hub(
    folder: Path,
    settings,
    *,
    registry: str | None = None,
    progress: Callable[[str], None] | None = None,
    epoch: int = 0,
) -> BuildResult:
    """Build ``folder``'s lock into the hub image in ``registry`` (default: the site's)."""
    return HubBuilder(
        Path(folder), settings, registry=registry, progress=progress, epoch=epoch
    ).run()
