"""The build sandbox: how ``lockstep build`` runs code that came from a package.

Guarantees: ``sandboxed`` returns the argv that runs a command from a staged environment
under bubblewrap (``bwrap``) with no network and no other namespace shared
(``--unshare-all``), a private user namespace in which the process is ``nobody`` with no
capabilities, an empty environment (``--clearenv``, then only ``PATH`` and the variables
the caller names), the host's ``/usr`` and the staged environment read-only, a private
``/tmp``, ``/proc`` and ``/dev``, and exactly the folders in ``writable`` writable. The
host's home, ``/etc``, ``/root``, the registry credentials and the package caches are not
visible at all. With ``c.Lockstep.build_sandbox = "none"`` (unsafe, documented so) the same
command runs directly, still with an empty environment.

``require_sandbox`` fails before a build touches anything when bwrap is missing, naming
the Debian package (``bubblewrap``) and the opt-out. This module builds argv lists and
checks ``PATH``; it runs nothing itself and must not import docker-py or rattler.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from spawner.errors import LockstepError

SANDBOX_PATH = "/usr/bin:/bin"
TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
"""Host folders that may be links into ``/usr`` (merged /usr) or real folders."""


class SandboxError(LockstepError):
    """The build sandbox cannot run."""


def require_sandbox(mode: str) -> str | None:
    """The bwrap executable for ``mode == "bwrap"``, None for ``"none"``; else an error."""
    if mode == "none":
        return None
    if mode != "bwrap":
        raise SandboxError(
            f"c.Lockstep.build_sandbox = {mode!r}; allowed: 'bwrap' (default) or 'none' (unsafe)."
        )
    found = shutil.which("bwrap")
    if not found:
        raise SandboxError(
            "lockstep build runs package code (bytecode compilation) inside bubblewrap, and "
            "`bwrap` is not on PATH. Install it (Debian/Ubuntu: `apt-get install bubblewrap`; "
            "scripts/setup.sh does), or, only if every channel is fully trusted, opt out with "
            'c.Lockstep.build_sandbox = "none" (unsafe: packages then run code as the builder).'
        )
    return found


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in TOP_LEVEL:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args


def sandboxed(
    command: Sequence[str],
    *,
    bwrap: str | None,
    read_only: Sequence[Path | tuple[Path, str]] = (),
    writable: Sequence[Path | tuple[Path, str]] = (),
    env: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """``(argv, environment)`` to run ``command``; with ``bwrap`` None, unsandboxed.

    ``read_only`` entries are host paths bound at the same path, or ``(host, inside)``
    pairs; ``writable`` folders likewise, bound read-write (a pair binds a host folder at
    a fixed inside path, so no host path reaches what the command writes). Unsandboxed,
    the command sees host paths only: the caller picks the path it passes accordingly.
    """
    clean = {"PATH": SANDBOX_PATH, **dict(env or {})}
    if bwrap is None:
        return list(command), clean
    args = [
        bwrap,
        "--unshare-all",
        "--unshare-user",
        "--uid",
        "65534",
        "--gid",
        "65534",
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        *_system_binds(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
    ]
    for entry in read_only:
        host, inside = (entry, str(entry)) if isinstance(entry, Path) else entry
        args += ["--ro-bind", str(host), inside]
    for entry in writable:
        host, inside = (entry, str(entry)) if isinstance(entry, Path) else entry
        args += ["--bind", str(host), inside]
    for key, value in sorted(clean.items()):
        args += ["--setenv", key, value]
    return [*args, "--chdir", "/", *command], {}
