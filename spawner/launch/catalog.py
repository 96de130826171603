"""The projects a hub offers: every valid ``project.yaml``, and the invalid ones with why.

Both spawners read projects through :func:`load_catalog`, so one broken ``project.yaml``
never takes the spawn form or anyone's spawn down with it: the project is left out of
``projects``, its error is kept in ``invalid`` (for the log and for admins on the form), and
every other project works as before. Reading is the only I/O; nothing is written.

Each call lists the folder and reads every ``project.yaml`` again (a project added, changed
or removed counts at the next spawn); only the parse is remembered, keyed by the file's
path and its exact text, so an unchanged file is not parsed and validated again on every
spawn and form (the hub's event loop serves every user). The remembered results are
immutable (``Project`` is frozen) and their number is bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from spawner.project import Project, ProjectError, parse_project

PARSED_MAX = 1024  # remembered parses (path + text -> project or error) before a reset
_parsed: dict[tuple[str, str], Project | str] = {}


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
        loaded = _load(path)
        if isinstance(loaded, str):
            invalid[path.parent.name] = loaded
        else:
            projects[loaded.name] = loaded
    return Catalog(projects=projects, invalid=invalid)


def _load(path: Path) -> Project | str:
    """The project ``path`` holds, or why it is not valid (remembered per path and text)."""
    try:
        text = path.read_text()
    except OSError as exc:
        return (
            f"{path}: cannot be read ({exc.strerror or exc}); make it a readable "
            "file for the hub's user."
        )
    key = (str(path), text)
    found = _parsed.get(key)
    if found is None:
        try:
            found = parse_project(text, source=str(path), folder_name=path.parent.name)
        except ProjectError as exc:
            found = str(exc)
        if len(_parsed) >= PARSED_MAX:
            _parsed.clear()
        _parsed[key] = found
    return found


def log_invalid(catalog: Catalog, log) -> None:
    """One error line per invalid project, naming the folder and the fix the error gives."""
    for name, error in sorted(catalog.invalid.items()):
        log.error("lockstep: project %s is skipped: %s", name, error)
