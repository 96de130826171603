"""Where a server opens: JupyterLab on the project's workspace, with ``/data`` one level up.

``jupyterhub-singleuser`` already opens ``/lab`` by itself when the image has JupyterLab's
server extension, and its own landing page when it has not. Lab's file browser is rooted
at the server's root folder, which is the home folder by default, so the project's
workspace and its data mounts (``/workspace``, ``/data/...``) would be out of view. For an
image known to have JupyterLab (``has_lab``: the image says so itself, with the label
``org.lockstep.jupyterlab`` its build wrote from the lock, whatever lock the project holds
now; or, where the image's labels were not read or predate that label, its lock hash is
the project's current lock and that lock pins ``jupyterlab``: ``ProjectFacts.serves_lab``)
this module gives the server the root ``/`` and the landing URL ``/lab/tree/<workspace>``
(or the home folder when the project has no workspace), the pattern JupyterHub documents
for ``c.Spawner.notebook_dir``. The Docker spawner passes the labels of its image inspect,
the service's reopen those of the registry's image config; the Kubernetes spawner reads
no image and keeps the project-facts rule.

Guarantees: an image not known to have JupyterLab gets nothing (so it is never sent to a
``/lab`` URL it cannot serve); a site that sets ``c.Spawner.default_url`` or
``c.Spawner.notebook_dir`` keeps its choice (the Hub's own variables win over these).
``landing_env`` is pure; ``server_env`` reads the project folder in a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from spawner.labels import JUPYTERLAB
from spawner.launch.projectfacts import ProjectFacts, facts_for
from spawner.launch.spec import HOME
from spawner.project import Project

ROOT_VAR, URL_VAR = "JUPYTERHUB_ROOT_DIR", "JUPYTERHUB_DEFAULT_URL"


def lab_label(labels: Mapping | None) -> str:
    """The JupyterLab version an image's labels name ('' for none or no labels). Pure."""
    return str((labels or {}).get(JUPYTERLAB) or "").strip()


def has_lab(labels: Mapping | None, facts: ProjectFacts, lock_hash: str) -> bool:
    """Whether an image serves JupyterLab: its ``JUPYTERLAB`` label says so, else (labels
    unread, ``None``, or written before the label existed) the project-facts rule. Pure."""
    return bool(lab_label(labels)) or facts.serves_lab(lock_hash)


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
    labels: Mapping | None = None,
) -> dict:
    """``with_landing`` for ``image`` (an ``ImageRef``) whose config labels are ``labels``
    (``None``: not read), reading the project's folder."""
    facts = (await facts_for([project.name], environments_dir))[project.name]
    return with_landing(hub_env, project, has_lab=has_lab(labels, facts, image.lock_hash))
