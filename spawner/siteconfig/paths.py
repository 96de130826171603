"""Where lockstep finds projects and keeps its state.

A mixin of ``spawner.settings.Lockstep``: these traits are ``c.Lockstep.*``. Every option
carries help text with an example; validators return the value. No I/O.
"""

from __future__ import annotations

import os
from pathlib import Path

from traitlets import HasTraits, Unicode, default


class PathsSettings(HasTraits):
    """``c.Lockstep`` options: where lockstep finds projects and keeps its state."""

    environments_dir = Unicode(
        "environments",
        help="""
        Folder holding one sub-folder per project (``environment.yml``, ``project.yaml``).

        Relative paths are taken from the current directory.

            c.Lockstep.environments_dir = "/srv/lockstep/environments"
        """,
    ).tag(config=True)

    notebooks_dir = Unicode(
        "notebooks",
        help="""
        Folder holding ``<project>/*.ipynb`` notebooks that promotion runs as gates.

            c.Lockstep.notebooks_dir = "/srv/lockstep/notebooks"
        """,
    ).tag(config=True)

    data_dir = Unicode(
        help="""
        Where lockstep keeps its state: registry storage, audit trail, session log.

        Defaults to ``$XDG_DATA_HOME/lockstep`` (``~/.local/share/lockstep``).

            c.Lockstep.data_dir = "/var/lib/lockstep"
        """,
    ).tag(config=True)

    @default("data_dir")
    def _default_data_dir(self) -> str:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return str(Path(base) / "lockstep")

    cache_dir = Unicode(
        help="""
        Where lockstep caches downloaded packages, built rootfs and test channels.

        Defaults to ``$XDG_CACHE_HOME/lockstep`` (``~/.cache/lockstep``).

            c.Lockstep.cache_dir = "/var/cache/lockstep"
        """,
    ).tag(config=True)

    @default("cache_dir")
    def _default_cache_dir(self) -> str:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return str(Path(base) / "lockstep")
