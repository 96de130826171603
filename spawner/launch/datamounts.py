"""Resolve each project data mount's host source under the site's data policy.

``project.yaml`` names a ``source`` or a ``dataset`` per data mount; this module turns it
into the real host path the engine binds read-only, and refuses anything else.
Guarantees:

* a ``source`` is confined to the project's own folder in a data root: written relative,
  it is taken from the first root (``c.Lockstep.data_roots``) and must start with the
  project's name (``source: forecast/sales``); written absolute, it must lie in
  ``<root>/<project>`` of some root. A link placed there by the data's curator is how a
  site shares a folder with one project; ``.``/``..`` segments are refused outright;
* a ``dataset`` must be one the site names in ``c.Lockstep.datasets`` and grants to the
  project (``projects``) or to a hub group of the user starting the server (``groups``);
* symlinks are followed and the *resolved* path must lie under a resolved root, so a link
  that escapes the roots is refused; the engine is then given the resolved path, never the
  link (a later swap of the link cannot redirect the bind);
* every target lies strictly below one of ``c.Lockstep.data_target_prefixes`` (``/data``);
  ``project.py`` has already refused targets over the environment, system folders, home,
  the workspace or each other;
* a missing source, a socket (e.g. ``docker.sock``) and a root that does not exist are
  refused; every error names the project, the mount, the key, what is allowed and the fix.

It reads the filesystem (stat/realpath) and never writes. Remaining risk, stated: someone
who can write inside a data root can still swap a directory between this check and the
bind; keep data roots writable only by their curators.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import NoReturn

from spawner.errors import LockstepError
from spawner.project import DataMount, Project


class DataMountError(LockstepError):
    """A data mount whose host source is not allowed or not there."""


@dataclass(frozen=True)
class DataPolicy:
    """The site's data rules: roots, target prefixes and named data sets."""

    roots: tuple[str, ...]
    target_prefixes: tuple[str, ...] = ("/data",)
    datasets: Mapping[str, Mapping] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings) -> DataPolicy:
        return cls(
            roots=tuple(settings.data_roots),
            target_prefixes=tuple(settings.data_target_prefixes),
            datasets=dict(settings.datasets),
        )


def _roots(roots: Sequence[str], base: Path | None, *, real: bool = True) -> list[Path]:
    resolved = []
    for root in roots:
        path = Path(root).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        resolved.append(Path(os.path.realpath(path) if real else os.path.abspath(path)))
    return resolved


def _fail(project: str, mount: DataMount, roots: Sequence, problem: str, fix: str) -> NoReturn:
    key = f"source {mount.source!r}" if mount.source else f"dataset {mount.dataset!r}"
    raise DataMountError(
        f"Project {project!r}, data mount {mount.name!r}: {key} {problem}. "
        f"Allowed data roots: {', '.join(str(r) for r in roots) or '(none configured)'}. "
        f"Fix: {fix}"
    )


def _lexical(project: str, mount: DataMount, roots: Sequence[str], base: Path | None) -> Path:
    """The unresolved source path, checked to lie in ``<root>/<project>``."""
    real_roots = _roots(roots, base)
    plain = _roots(roots, base, real=False)
    if ".." in PurePosixPath(mount.source).parts:
        _fail(project, mount, real_roots, "contains '..'",
              "write the source as a path inside a data root, without '..'.")
    raw = Path(mount.source).expanduser()
    candidate = raw if raw.is_absolute() else real_roots[0] / raw
    own = [r / project for r in (*real_roots, *plain)]
    if not any(candidate == o or o in candidate.parents for o in own):
        _fail(project, mount, real_roots,
              f"is not in the project's own data folder ({real_roots[0] / project})",
              f"put the data under {real_roots[0] / project}/ and write source: {project}/NAME, "
              "or ask the admin to offer it in c.Lockstep.datasets (then write dataset: NAME) "
              f"or to link it into {real_roots[0] / project}/.")
    return candidate


def _dataset(
    project: str, mount: DataMount, roots: Sequence[str], datasets: Mapping[str, Mapping],
    user_groups: Collection[str], base: Path | None,
) -> Path:
    real_roots = _roots(roots, base)
    entry = datasets.get(mount.dataset)
    if entry is None:
        _fail(project, mount, real_roots,
              f"is not offered by the site (offered: {', '.join(sorted(datasets)) or 'none'})",
              "use one of those names, or ask the admin to add it to c.Lockstep.datasets.")
    if project not in entry.get("projects", ()) and not (
        set(entry.get("groups", ())) & set(user_groups)
    ):
        _fail(project, mount, real_roots,
              f"is not granted to this project (projects: {list(entry.get('projects', []))}, "
              f"groups: {list(entry.get('groups', []))})",
              f"ask the admin to add {project!r} to c.Lockstep.datasets[{mount.dataset!r}]"
              "['projects'].")
    raw = Path(str(entry["source"])).expanduser()
    return raw if raw.is_absolute() else real_roots[0] / raw


def _check_target(project: str, mount: DataMount, prefixes: Sequence[str]) -> None:
    target = PurePosixPath(mount.target)
    if not any(PurePosixPath(p) in target.parents for p in prefixes):
        raise DataMountError(
            f"Project {project!r}, data mount {mount.name!r}: key 'target' {mount.target!r} "
            f"is not below an allowed data folder ({', '.join(prefixes) or 'none'}). Fix: "
            f"mount it at {prefixes[0] if prefixes else '/data'}/{mount.name} in project.yaml, "
            "or ask the admin to add a prefix to c.Lockstep.data_target_prefixes."
        )


def resolve_mount(
    project: str,
    mount: DataMount,
    roots: Sequence[str],
    *,
    base: Path | None = None,
    policy: DataPolicy | None = None,
    user_groups: Collection[str] = (),
) -> str:
    """The resolved host path for ``mount``, or ``DataMountError``."""
    policy = policy or DataPolicy(roots=tuple(roots))
    roots = policy.roots
    if not roots:
        _fail(project, mount, roots, "cannot be mounted because no data roots are configured",
              "set c.Lockstep.data_roots = ['/srv/data'] and put the data there.")
    _check_target(project, mount, policy.target_prefixes)
    real_roots = _roots(roots, base)
    if mount.dataset:
        candidate = _dataset(project, mount, roots, policy.datasets, user_groups, base)
    else:
        candidate = _lexical(project, mount, roots, base)
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
    project: Project,
    roots: Sequence[str],
    *,
    base: Path | None = None,
    policy: DataPolicy | None = None,
    user_groups: Collection[str] = (),
) -> dict[str, str]:
    """``{mount name: resolved host path}`` for every data mount of ``project``.

    ``policy`` (``DataPolicy.from_settings(settings)``) adds the site's target prefixes
    and named data sets; without it only ``roots`` and the default ``/data`` prefix apply.
    """
    return {
        m.name: resolve_mount(
            project.name, m, roots, base=base, policy=policy, user_groups=user_groups
        )
        for m in project.data
    }


def site_data_sources(
    project: Project, settings, *, user_groups: Collection[str] = ()
) -> dict[str, str]:
    """``resolve_data_sources`` under the site's whole policy (``c.Lockstep.data_roots``,
    ``data_target_prefixes`` and ``datasets``); ``user_groups`` are the hub groups of the
    user starting the server, for data sets granted to groups."""
    return resolve_data_sources(
        project, settings.data_roots, policy=DataPolicy.from_settings(settings),
        user_groups=user_groups,
    )
