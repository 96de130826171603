"""What the service shows of the session log: a user's own sessions, and for admins every
running server grouped by project and digest, with those on digests no stage holds any more.

A session is *running* while the log has its start and no stop. A digest is *held* when a
stage pointer of the session's project points at it now; a running server on a digest no
stage holds runs an environment that was promoted past or rolled back.

Pure: functions over ``spawner.sessions.Session`` lists and a project -> stage -> digest
map; no file, clock or network. Sessions of other users are only ever returned by
``admin_overview``, which the handlers call for hub admins only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from spawner.launch.access import Requester
from spawner.sessions import Session


@dataclass(frozen=True)
class DigestGroup:
    """Running sessions of one project on one digest, and the stages that hold it now."""

    project: str
    digest: str
    stages: tuple[str, ...]
    sessions: tuple[Session, ...]

    @property
    def orphaned(self) -> bool:
        return not self.stages

    def to_json(self) -> dict:
        return {"project": self.project, "digest": self.digest, "stages": list(self.stages),
                "orphaned": self.orphaned, "count": len(self.sessions),
                "users": sorted({s.user for s in self.sessions}),
                "sessions": [session_json(s) for s in self.sessions]}


def session_json(session: Session) -> dict:
    """A session for the API: its record, whether it runs, and the ``user_options`` that
    start a server on exactly its image again."""
    return {**session.to_json(), "running": not session.stop,
            "reopen": {"session": session.id}}


def own_sessions(sessions: Iterable[Session], who: Requester,
                 limit: int | None = None) -> list[Session]:
    """``who``'s sessions, newest start first (at most ``limit``)."""
    mine = sorted((s for s in sessions if s.user == who.name),
                  key=lambda s: (s.start, s.id), reverse=True)
    return mine if limit is None else mine[:limit]


def running(sessions: Iterable[Session]) -> list[Session]:
    """Sessions that started and have not stopped."""
    return [s for s in sessions if not s.stop]


def holders(pointers: Mapping[str, Mapping[str, str]], project: str,
            digest: str) -> tuple[str, ...]:
    """The stages of ``project`` whose pointer is ``digest`` now, in the map's order."""
    return tuple(stage for stage, held in (pointers.get(project) or {}).items() if held == digest)


def admin_overview(sessions: Iterable[Session],
                   pointers: Mapping[str, Mapping[str, str]]) -> list[DigestGroup]:
    """Running sessions grouped by (project, digest), sorted; ``pointers`` maps project ->
    stage -> digest for the stages that have a pointer now."""
    groups: dict[tuple[str, str], list[Session]] = {}
    for session in running(sessions):
        groups.setdefault((session.project, session.digest), []).append(session)
    return [
        DigestGroup(project, digest, holders(pointers, project, digest),
                    tuple(sorted(found, key=lambda s: (s.user, s.start, s.id))))
        for (project, digest), found in sorted(groups.items())
    ]
