"""The projects a hub offers: every valid ``project.yaml``, and the invalid ones with why.

Both spawners read projects through :func:`load_catalog`, so one broken ``project.yaml``
never takes the spawn form or anyone's spawn down with it: the project is left out of
``projects``, its error is kept in ``invalid`` (for the log and for admins on the form), and
every other project works as before. Reading is the only I/O; nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from spawner.project import Project, ProjectError, load_project


@dataclass(frozen=True)
class Catalog:
    """Valid projects by name, and the folders whose ``project.yaml`` did not load."""

    projects: dict[str, Project] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)
    """Folder name -> the error, as :class:`~spawner.project.ProjectError` words it."""


def load_catalog(environments_dir: str | Path) -> Catalog:
    """Load every ``<environments_dir>/*/project.yaml``; never raises for one bad project."""
    root = Path(environments_dir).expanduser()
    projects: dict[str, Project] = {}
    invalid: dict[str, str] = {}
    for path in sorted(root.glob("*/project.yaml")):
        try:
            project = load_project(path.parent)
        except ProjectError as exc:
            invalid[path.parent.name] = str(exc)
            continue
        projects[project.name] = project
    return Catalog(projects=projects, invalid=invalid)


def log_invalid(catalog: Catalog, log) -> None:
    """One error line per invalid project, naming the folder and the fix the error gives."""
    for name, error in sorted(catalog.invalid.items()):
        log.error("lockstep: project %s is skipped: %s", name, error)
