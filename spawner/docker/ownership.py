"""Whether a container found under a server's name is that server's own leftover (pure).

The spawner removes "a leftover container" that holds the name it is about to create (a
server whose stop was interrupted). Before 0.2 a hub user named ``svc-forecast-0`` had the
prod model service's container name, and the spawner force-removed it. Names no longer
collide (``lockstep-svc_<project>_<i>``, ``lockstep-job_<project>_<session>``, homes with
``_``), and this check is the second wall: a container is removed only when its labels say
lockstep made it as the notebook server of this very user and server name.

Guarantees: ``leftover_verdict`` returns True (remove it), False (nothing there) or raises
``NotOurs`` naming the container, what its labels say and the fix. It must not talk to the
engine; the spawner inspects and removes through ``spawner.docker.engine``.
"""

from __future__ import annotations

from spawner.errors import LockstepError
from spawner.labels import KIND, MANAGED, PROJECT, SERVER_NAME, USER
from spawner.launch.spec import safe_slug


class NotOurs(LockstepError):
    """A container holds the server's name but lockstep did not make it for this server."""


def leftover_verdict(info: dict | None, *, name: str, user: str, server: str) -> bool:
    """True when ``info`` (``docker inspect`` or None) is this user's server's own leftover."""
    if info is None:
        return False
    labels = (info.get("Config") or {}).get("Labels") or {}
    mismatch = []
    if labels.get(MANAGED) != "true":
        mismatch.append(f"{MANAGED} is {labels.get(MANAGED)!r}, not 'true'")
    if labels.get(KIND):
        mismatch.append(f"it is a lockstep {labels[KIND]} of project {labels.get(PROJECT)!r}")
    if labels.get(USER) != safe_slug(user):
        mismatch.append(f"{USER} is {labels.get(USER)!r}, not {safe_slug(user)!r}")
    if labels.get(SERVER_NAME, "") != server:
        mismatch.append(f"{SERVER_NAME} is {labels.get(SERVER_NAME)!r}, not {server!r}")
    if mismatch:
        raise NotOurs(
            f"a container named {name} already exists and was not made by lockstep for "
            f"{user!r}'s server {server!r} ({'; '.join(mismatch)}); it is left alone. An "
            f"administrator can check it (docker inspect {name}) and remove or rename it.")
    return True
