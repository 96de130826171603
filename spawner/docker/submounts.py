"""Read-only data that stays read-only below: submounts of data sources (issue 11, finding 8).

A data mount is a read-only bind. Before Docker 25 (Engine API 1.44) a read-only bind is
not recursive: a file system mounted *inside* the source (an NFS export, a loop device, a
bind a curator made) is mounted writable in the container. API 1.44 adds
``BindOptions.ReadOnlyForceRecursive``, which the renderer sets where the engine has it.
On an older engine a data source with anything mounted below it is refused, naming the
submounts and the fix, before any container exists.

Guarantees: ``parse_mountinfo`` and ``submounts_below`` are pure (the text of
``/proc/self/mountinfo`` in, mount points out; octal escapes decoded); ``check_sources``
reads ``/proc/self/mountinfo`` of the process that talks to the engine (the hub or the
CLI, which must share the host's mount namespace for the check to mean anything) and raises
``SubmountRefused``. It must not talk to the engine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from spawner.errors import LockstepError

RECURSIVE_API = (1, 44)  # BindOptions.ReadOnlyForceRecursive
MOUNTINFO = "/proc/self/mountinfo"


class SubmountRefused(LockstepError):
    """A data source has a file system mounted below it and the engine cannot make the
    whole tree read-only."""


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[str]:
    """Every mount point in a ``/proc/<pid>/mountinfo`` text (field 5), in order."""
    return [_unescape(line.split()[4]) for line in text.splitlines() if len(line.split()) > 4]


def submounts_below(source: str, mount_points: list[str]) -> list[str]:
    """Mount points strictly below ``source`` (an absolute, resolved path), sorted."""
    root = source.rstrip("/") + "/"
    return sorted({p for p in mount_points if p.startswith(root) and p != source})


def api_has_recursive_read_only(api_version: str) -> bool:
    """Whether an Engine API version (``"1.41"``) has ``ReadOnlyForceRecursive``."""
    try:
        major, minor = (int(x) for x in api_version.split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= RECURSIVE_API


def check_sources(sources: Mapping[str, str], *, recursive: bool,
                  mountinfo: str = MOUNTINFO) -> None:
    """Refuse data sources with submounts unless the engine makes binds recursively
    read-only (``recursive``)."""
    if recursive or not sources:
        return
    with open(mountinfo) as handle:
        points = parse_mountinfo(handle.read())
    for name, source in sorted(sources.items()):
        below = submounts_below(os.path.realpath(source), points)
        if below:
            raise SubmountRefused(
                f"data mount {name!r} ({source}) has file systems mounted below it "
                f"({', '.join(below[:5])}{' ...' if len(below) > 5 else ''}); this Docker "
                "engine (API < 1.44) would mount them writable inside a read-only data "
                "mount. Unmount them, point the data set at a folder without mounts below "
                "it, or upgrade to Docker 25+ (ReadOnlyForceRecursive).")
