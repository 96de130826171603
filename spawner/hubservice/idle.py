"""Idle servers for admins: the hub's running servers whose ``last_activity`` is older than
``c.Lockstep.idle_after``, with the project, stage and digest the session log says each
runs, most idle first.

``parse_servers`` reads the hub's user models (``GET /hub/api/users?state=active``, the
``servers`` of each, seen with the service's ``read:servers`` scope) into ``HubServer``;
``idle_servers`` joins them with the running sessions of the log by (user, server name)
and the stage pointers (``sessionsview.holders``). A server lockstep did not start (no
running session) is still listed, with ``project``/``digest`` null. A server being started
or stopped (``pending``) is never idle; one the hub has no activity for counts from its
start.

Pure: no clock (``now`` is given), file or network; it must not decide who sees it (the
answers call it for hub admins only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from spawner.hubservice.sessionsview import holders, running, session_json
from spawner.sessions import Session


@dataclass(frozen=True)
class HubServer:
    """One running server as the hub reports it (``name`` '' is the default server)."""

    user: str
    name: str
    last_activity: datetime | None
    started: datetime | None

    @property
    def since(self) -> datetime | None:
        """When the server was last active (its start when the hub saw no activity yet)."""
        return self.last_activity or self.started


@dataclass(frozen=True)
class IdleServer:
    """A server idle for ``idle_seconds``, and the session it runs (None: not lockstep's)."""

    server: HubServer
    idle_seconds: float
    session: Session | None
    stages: tuple[str, ...]

    def to_json(self) -> dict:
        s, session = self.server, self.session
        return {
            "user": s.user,
            "server_name": s.name,
            "last_activity": iso(s.last_activity),
            "started": iso(s.started),
            "idle_seconds": round(self.idle_seconds, 1),
            "project": session.project if session else None,
            "stage": session.stage if session else None,
            "digest": session.digest if session else None,
            "stages": list(self.stages),
            "orphaned": bool(session) and not self.stages,
            "session": session_json(session) if session else None,
        }


def parse_time(value) -> datetime | None:
    """A hub timestamp (ISO 8601, ``Z`` or offset) as an aware UTC datetime; None for none
    or for text that is not a time."""
    if not value or not isinstance(value, str):
        return None
    try:
        found = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (found if found.tzinfo else found.replace(tzinfo=UTC)).astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value else None


def parse_servers(users: Iterable[Mapping]) -> list[HubServer]:
    """The running, settled servers of hub user models (``servers`` of each), sorted."""
    found = []
    for user in users:
        for name, server in (user.get("servers") or {}).items():
            if (
                not isinstance(server, Mapping)
                or server.get("pending")
                or server.get("stopped")
                or not server.get("ready", True)
            ):
                continue
            found.append(
                HubServer(
                    str(user.get("name", "")),
                    str(server.get("name", name)),
                    parse_time(server.get("last_activity")),
                    parse_time(server.get("started")),
                )
            )
    return sorted(found, key=lambda s: (s.user, s.name))


def _by_server(sessions: Iterable[Session]) -> dict[tuple[str, str], Session]:
    """The newest running session of each (user, server name)."""
    out: dict[tuple[str, str], Session] = {}
    for session in sorted(running(sessions), key=lambda s: (s.start, s.id)):
        out[(session.user, session.server_name)] = session
    return out


def idle_servers(
    servers: Iterable[HubServer],
    sessions: Iterable[Session],
    pointers: Mapping[str, Mapping[str, str]],
    *,
    now: datetime,
    idle_after: float,
) -> list[IdleServer]:
    """Servers idle for at least ``idle_after`` seconds at ``now``, most idle first (then
    user and server name); ``pointers`` maps project -> stage -> digest."""
    live = _by_server(sessions)
    out = []
    for server in servers:
        since = server.since
        if since is None:
            continue
        idle = (now - since).total_seconds()
        if idle < idle_after:
            continue
        session = live.get((server.user, server.name))
        stages = holders(pointers, session.project, session.digest) if session else ()
        out.append(IdleServer(server, idle, session, stages))
    return sorted(out, key=lambda i: (-i.idle_seconds, i.server.user, i.server.name))
