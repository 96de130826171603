"""Sessions: a user's own, newest first; for admins running servers by project and digest,
and those on digests no stage holds."""

from __future__ import annotations

from spawner.hubservice.sessionsview import admin_overview, own_sessions, session_json
from spawner.launch.access import Requester
from tests.unit.hubservice.servicedata import digest, sessions


def test_own_sessions_only_and_newest_first():
    every = sessions(200, users=4)
    mine = own_sessions(every, Requester("user1"))
    assert {s.user for s in mine} == {"user1"} and len(mine) == 50
    assert [s.start for s in mine] == sorted((s.start for s in mine), reverse=True)
    assert len(own_sessions(every, Requester("user1"), limit=3)) == 3
    assert session_json(mine[0])["reopen"] == {"session": mine[0].id}


def test_admin_overview_groups_running_servers_and_marks_orphans():
    every = sessions(400)
    running = [s for s in every if not s.stop]
    pointers = {"forecast": {"dev": digest("img0"), "qa": digest("img0")}}
    groups = admin_overview(every, pointers)
    assert sum(len(g.sessions) for g in groups) == len(running) == 8
    held = [g for g in groups if not g.orphaned]
    assert [(g.project, g.digest, g.stages) for g in held] == [
        ("forecast", digest("img0"), ("dev", "qa"))]
    assert all(g.orphaned for g in groups if g is not held[0])
    assert groups == sorted(groups, key=lambda g: (g.project, g.digest))
    assert groups[0].to_json()["count"] == len(groups[0].sessions)
