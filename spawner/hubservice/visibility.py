"""Which projects a hub user sees in the service: their own, and nothing of the others.

The rule is the spawners' (``spawner.launch.access.may_use``: a listed user, a member of a
listed group, or a hub admin). A project the user may not use is answered exactly like a
project that does not exist: ``NotVisible`` (404) with the same words, so the answer never
tells a non-member that a project is there, who its members are, or what its stages hold.

Pure: functions over a ``Catalog``-like mapping of ``Project`` and a ``Requester``. It must
not read files or talk to the hub or a registry.
"""

from __future__ import annotations

from collections.abc import Mapping

from spawner.errors import LockstepError
from spawner.launch.access import Requester, may_use, usable_projects
from spawner.project import Project


class NotVisible(LockstepError):
    """A project, stage or digest the requester cannot see (or that does not exist): 404."""

    status = 404


class BadRequest(LockstepError):
    """A query the service cannot answer as asked (names what is allowed): 400."""

    status = 400


def visible_projects(projects: Mapping[str, Project], who: Requester) -> list[Project]:
    """The projects ``who`` may use, sorted by name."""
    return usable_projects(projects.values(), who)


def visible_project(projects: Mapping[str, Project], name: str, who: Requester) -> Project:
    """Project ``name`` if ``who`` may use it; else ``NotVisible``, worded the same whether
    the project exists or not."""
    project = projects.get(name)
    if project is None or not may_use(project, who):
        mine = ", ".join(p.name for p in visible_projects(projects, who)) or "(none)"
        raise NotVisible(f"You have no project named {name!r}. Your projects: {mine}.")
    return project
