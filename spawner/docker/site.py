"""One site-options object for Docker, read by the hub and by the CLI alike.

``DockerSite`` holds what a site decides about the engine once for every container lockstep
starts there, servers, jobs (``lockstep run``), services (``lockstep deploy``) and the
notebooks gate: which OCI runtime each ``isolation`` maps to, how GPUs are requested,
whether project networks are ``--internal``, whether lockstep keeps its firewall chains and
which host ports they admit, how new volumes are handed to the notebook user, and whether a
new workspace is seeded with the project's notebooks.

It is built from the ``c.LockstepDockerSpawner.*`` traits (``spawner.docker.traits``) and
nowhere else: the spawner reads its own traits (``DockerSite.from_traits(self)``), the CLI
reads the same section of the config file it loads (``lockstep_config.py``, ``--config``
or ``$LOCKSTEP_CONFIG``; point it at ``jupyterhub_config.py``, or ``load_subconfig`` one
from the other, so the site writes each option once)::

    c.LockstepDockerSpawner.runtime_names = {"kata": "kata-qemu"}

This module is pure: it reads a ``Config`` already loaded, never a file, the engine or
``os.environ``; a bad value is refused with the option's name and the allowed values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from traitlets import TraitError
from traitlets.config import Config
from traitlets.config.loader import LazyConfigValue

from spawner.docker.egress import Egress, parse_all
from spawner.docker.runtimes import DEFAULT_RUNTIME_NAMES
from spawner.docker.traits import LockstepDockerTraits
from spawner.errors import LockstepError

SECTION = "LockstepDockerSpawner"


@dataclass(frozen=True)
class DockerSite:
    """The Docker engine choices of a site (``c.LockstepDockerSpawner.*``), immutable.

    ``runtime_names`` is the full isolation -> runtime table (defaults merged in, '' means
    the engine's default runtime); the other fields carry the traits of the same name.
    """

    runtime_names: tuple[tuple[str, str], ...] = tuple(sorted(DEFAULT_RUNTIME_NAMES.items()))
    gpu_mode: str = "auto"
    network_internal: bool = False
    firewall: bool = True
    allowed_host_ports: tuple[int, ...] = ()
    allowed_egress: tuple[Egress, ...] = ()
    volume_ownership: str = "chown"
    seed_workspace: bool = True
    host_cuda_version: str = ""
    """The CUDA the host's driver supports ('' = read it from nvidia-smi, or unknown)."""

    @property
    def runtimes(self) -> dict[str, str]:
        """``runtime_names`` as a dict (isolation -> engine runtime name)."""
        return dict(self.runtime_names)

    @property
    def chown_volumes(self) -> bool:
        """True when new home/workspace volumes get the one-shot ``chown`` container."""
        return self.volume_ownership == "chown"

    @classmethod
    def from_traits(cls, traits: LockstepDockerTraits) -> DockerSite:
        """The site of an object carrying the traits (the spawner, or the CLI's reader)."""
        names = {**DEFAULT_RUNTIME_NAMES, **{str(k): str(v or "")
                                             for k, v in traits.runtime_names.items()}}
        return cls(
            runtime_names=tuple(sorted(names.items())),
            gpu_mode=traits.gpu_mode,
            network_internal=bool(traits.network_internal),
            firewall=bool(traits.firewall),
            allowed_host_ports=tuple(sorted({int(p) for p in traits.allowed_host_ports})),
            allowed_egress=parse_all(traits.allowed_egress),
            volume_ownership=traits.volume_ownership,
            seed_workspace=bool(traits.seed_workspace),
            host_cuda_version=traits.host_cuda_version,
        )


def _value(traits: LockstepDockerTraits, name: str, value: object) -> object:
    if isinstance(value, LazyConfigValue):  # c.X.runtime_names.update({...}) and friends
        return value.get_value(getattr(traits, name))
    return value


def site_from_config(config: Config | Mapping | None, *, source: str = "the config") -> DockerSite:
    """The ``DockerSite`` a ``c.LockstepDockerSpawner`` section states (defaults otherwise).

    Only the traits ``LockstepDockerSpawner`` defines are read; DockerSpawner's own options
    in the same section belong to the hub and are left alone.
    """
    traits = LockstepDockerTraits()
    section = (config or {}).get(SECTION) or {}
    for name, raw in section.items():
        if not traits.has_trait(name):
            continue
        try:
            setattr(traits, name, _value(traits, name, raw))
        except (TraitError, ValueError, TypeError) as exc:
            raise LockstepError(
                f"c.{SECTION}.{name} in {source} is not valid: {exc}. Fix it there (the "
                "hub reads the same option; its help text lists what it takes).") from None
    return DockerSite.from_traits(traits)


def load_docker_site(settings) -> DockerSite:
    """The ``DockerSite`` of the config file the CLI loaded into ``settings``."""
    return site_from_config(getattr(settings, "config", None), source="the lockstep config")
