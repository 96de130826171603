"""Resolve each project data mount's host source under the site's allowed data roots.

``project.yaml`` names a ``source`` per data mount; this module turns it into the real
host path the engine binds read-only, and refuses anything else. Guarantees:

* a relative source is taken from the first root (``c.Lockstep.data_roots``);
* a source containing ``..`` is refused outright, whatever it would resolve to;
* symlinks are followed and the *resolved* path must lie under a resolved root, so a link
  that escapes the roots is refused; the engine is then given the resolved path, never the
  link (a later swap of the link cannot redirect the bind);
* a missing source, a socket (e.g. ``docker.sock``) and a root that does not exist are
  refused; every error names the project, the mount, the source, the allowed roots and
  the fix.

It reads the filesystem (stat/realpath) and never writes. Remaining risk, stated: someone
who can write inside a data root can still swap a directory between this check and the
bind; keep data roots writable only by their curators.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import NoReturn

from spawner.errors import LockstepError
from spawner.project import DataMount, Project


class DataMountError(LockstepError):
    """A data mount whose host source is not allowed or not there."""


def _roots(roots: Sequence[str], base: Path | None) -> list[Path]:
    resolved = []
    for root in roots:
        path = Path(root).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        resolved.append(Path(os.path.realpath(path)))
    return resolved


def _fail(project: str, mount: DataMount, roots: Sequence, problem: str, fix: str) -> NoReturn:
    raise DataMountError(
        f"Project {project!r}, data mount {mount.name!r}: source {mount.source!r} {problem}. "
        f"Allowed data roots: {', '.join(str(r) for r in roots) or '(none configured)'}. "
        f"Fix: {fix}"
    )


def resolve_mount(
    project: str, mount: DataMount, roots: Sequence[str], *, base: Path | None = None
) -> str:
    """The resolved host path for ``mount``, or ``DataMountError``."""
    if not roots:
        _fail(project, mount, roots, "cannot be mounted because no data roots are configured",
              "set c.Lockstep.data_roots = ['/srv/data'] and put the data there.")
    real_roots = _roots(roots, base)
    if ".." in PurePosixPath(mount.source).parts:
        _fail(project, mount, real_roots, "contains '..'",
              "write the source as a path inside a data root, without '..'.")
    raw = Path(mount.source).expanduser()
    candidate = raw if raw.is_absolute() else real_roots[0] / raw
    resolved = Path(os.path.realpath(candidate))
    inside = [r for r in real_roots if resolved == r or r in resolved.parents]
    if not inside:
        via = f" (it resolves to {resolved})" if resolved != candidate else ""
        _fail(project, mount, real_roots, f"is outside the allowed data roots{via}",
              "move or link the data under one of the allowed roots (a symlink must also "
              "point inside them), or ask the admin to add a root to c.Lockstep.data_roots.")
    if not any(r.is_dir() for r in inside):
        _fail(project, mount, real_roots, "lies under a data root that does not exist",
              f"create {inside[0]} or fix c.Lockstep.data_roots.")
    try:
        mode = resolved.stat().st_mode
    except FileNotFoundError:
        _fail(project, mount, real_roots, f"does not exist ({resolved})",
              f"create it (mkdir -p {resolved}) and put the data there, or fix 'source' "
              "in project.yaml.")
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        _fail(project, mount, real_roots, f"is not a directory or regular file ({resolved})",
              "point 'source' at a data folder; sockets and devices are never mounted.")
    return str(resolved)


def resolve_data_sources(
    project: Project, roots: Sequence[str], *, base: Path | None = None
) -> dict[str, str]:
    """``{mount name: resolved host path}`` for every data mount of ``project``."""
    return {m.name: resolve_mount(project.name, m, roots, base=base) for m in project.data}
