"""Where a server opens: JupyterLab on the project's workspace, with ``/data`` one level up.

``jupyterhub-singleuser`` already opens ``/lab`` by itself when the image has JupyterLab's
server extension, and its own landing page when it has not. Lab's file browser is rooted
at the server's root folder, which is the home folder by default, so the project's
workspace and its data mounts (``/workspace``, ``/data/...``) would be out of view. For an
image known to have JupyterLab (its lock hash is the project's current lock, and that lock
pins ``jupyterlab``: ``ProjectFacts.serves_lab``) this module gives the server the root
``/`` and the landing URL ``/lab/tree/<workspace>`` (or the home folder when the project
has no workspace), the pattern JupyterHub documents for ``c.Spawner.notebook_dir``.

Guarantees: an image not known to have JupyterLab gets nothing (so it is never sent to a
``/lab`` URL it cannot serve); a site that sets ``c.Spawner.default_url`` or
``c.Spawner.notebook_dir`` keeps its choice (the Hub's own variables win over these).
``landing_env`` is pure; ``server_env`` reads the project folder in a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from spawner.launch.projectfacts import facts_for
from spawner.launch.spec import HOME
from spawner.project import Project

ROOT_VAR, URL_VAR = "JUPYTERHUB_ROOT_DIR", "JUPYTERHUB_DEFAULT_URL"


def landing_env(project: Project, *, has_lab: bool) -> dict[str, str]:
    """``JUPYTERHUB_ROOT_DIR`` and ``JUPYTERHUB_DEFAULT_URL`` for a server of ``project``."""
    if not has_lab:
        return {}
    start = project.workspace.target if project.workspace.enabled else HOME
    return {ROOT_VAR: "/", URL_VAR: "/lab/tree/" + start.strip("/")}


def with_landing(hub_env: Mapping, project: Project, *, has_lab: bool) -> dict:
    """``hub_env`` plus the landing variables it does not set itself (the site's win)."""
    extra = landing_env(project, has_lab=has_lab)
    if ROOT_VAR in hub_env or URL_VAR in hub_env:
        extra = {}  # half a site choice plus half of ours would land outside the root
    return {**extra, **hub_env}


async def server_env(
    hub_env: Mapping,
    project: Project,
    image,
    environments_dir: str | Path,
) -> dict:
    """``with_landing`` for ``image`` (an ``ImageRef``), reading the project's folder."""
    facts = (await facts_for([project.name], environments_dir))[project.name]
    return with_landing(hub_env, project, has_lab=facts.serves_lab(image.lock_hash))
