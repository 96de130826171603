"""lockstep's site configuration, one traitlets class for the CLI and the hub.

The same ``c.Lockstep.*`` options are read from ``lockstep_config.py`` by the CLI and
from ``jupyterhub_config.py`` by the spawners, so a site states its channels, mirrors,
registry and stages once.

The options live in ``spawner.siteconfig`` (paths, channels, registry, data, build,
service), one mixin a concern; ``Lockstep`` joins them. This module guarantees that every
option carries help text with an example, and that loading settings never writes anything.
It must not hold project logic.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from traitlets.config import Config, Configurable, PyFileConfigLoader

from spawner.errors import LockstepError
from spawner.siteconfig.build import BuildSettings
from spawner.siteconfig.channels import ChannelsSettings
from spawner.siteconfig.data import DataSettings
from spawner.siteconfig.paths import PathsSettings
from spawner.siteconfig.registry import DEFAULT_STAGES, RegistrySettings  # noqa: F401
from spawner.siteconfig.service import ServiceSettings

ENV_PREFIX = "/opt/env"
"""The one prefix every project environment has inside its image (shared layers need it)."""


def unknown_stage(stage: str, stages: Sequence[str]) -> str:
    """The one message for a stage name the site does not have: what, the choices, the fix.

    Every caller (spawn form, ``lockstep run``, ``promote``, ``rollback``) raises its own
    error type with this text, so the wording cannot drift. Pure.
    """
    return (f"unknown stage {stage!r}; this site's stages are {', '.join(stages)} "
            "(c.Lockstep.stages)")


class Lockstep(PathsSettings, ChannelsSettings, RegistrySettings, DataSettings, BuildSettings,
               ServiceSettings, Configurable):
    """Site settings shared by the ``lockstep`` CLI and the lockstep spawners: the
    options of ``spawner.siteconfig``'s mixins, read as ``c.Lockstep.*``."""

    def data_path(self, *parts: str) -> Path:
        """Return a path under ``data_dir``."""
        return Path(self.data_dir).expanduser().joinpath(*parts)

    def cache_path(self, *parts: str) -> Path:
        """Return a path under ``cache_dir``."""
        return Path(self.cache_dir).expanduser().joinpath(*parts)

    def project_dir(self, name: str) -> Path:
        """Return ``environments_dir/<name>``."""
        return Path(self.environments_dir).expanduser() / name


def find_config_file(explicit: str | None = None) -> Path | None:
    """The config file to read: the one given, ``$LOCKSTEP_CONFIG`` or ``./lockstep_config.py``."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise LockstepError(
                f"config file {explicit} does not exist; pass an existing lockstep_config.py"
            )
        return path
    env = os.environ.get("LOCKSTEP_CONFIG")
    if env:
        return find_config_file(env)
    local = Path("lockstep_config.py")
    return local if local.is_file() else None


def load_config(path: Path | None) -> Config:
    """Read a traitlets Python config file into a ``Config`` (empty when ``path`` is None)."""
    if path is None:
        return Config()
    loader = PyFileConfigLoader(path.name, path=str(path.parent.resolve()))
    return loader.load_config()


def load_settings(config_file: str | None = None, config: Config | None = None) -> Lockstep:
    """Build the site settings from a config file, then overlay ``config``."""
    cfg = load_config(find_config_file(config_file))
    if config is not None:
        cfg.merge(config)
    return Lockstep(config=cfg)
