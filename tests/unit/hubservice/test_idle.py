"""Idle servers for admins: the hub's servers past ``c.Lockstep.idle_after``, joined with
the session log, most idle first; the setting, the reader of the hub's API and the page."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from traitlets import TraitError

from spawner.hubservice import page
from spawner.hubservice.hubservers import HubServers, HubUnavailable
from spawner.hubservice.idle import idle_servers, parse_servers, parse_time
from spawner.sessions import Session
from spawner.settings import Lockstep

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def ago(minutes: float) -> str:
    return (NOW - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def user(name: str, **servers) -> dict:
    return {
        "name": name,
        "servers": {
            k: {"name": k, "ready": True, "pending": None, **v} for k, v in servers.items()
        },
    }


def session(user: str, server: str, digest: str, *, stop: str = "", start: str = "a") -> Session:
    return Session(
        id=f"{user}-{server}-{start}",
        user=user,
        project="forecast",
        stage="qa",
        digest=digest,
        image=f"r/forecast@{digest}",
        server_name=server,
        start=start,
        stop=stop,
    )


def test_parse_servers_keeps_settled_running_servers_with_times():
    users = [
        user("bob", **{"": {"last_activity": ago(5), "started": ago(90)}}),
        user(
            "alice",
            gpu={"last_activity": None, "started": ago(30)},
            spawning={"pending": "spawn", "last_activity": ago(500)},
            stopping={"pending": "stop", "last_activity": ago(500)},
            booting={"ready": False, "last_activity": ago(500)},
        ),
        {"name": "carol"},
    ]
    found = parse_servers(users)
    assert [(s.user, s.name) for s in found] == [("alice", "gpu"), ("bob", "")]
    assert found[0].last_activity is None and found[0].since == NOW - timedelta(minutes=30)
    assert found[1].since == NOW - timedelta(minutes=5)


def test_parse_time_is_utc_aware_and_none_for_junk():
    assert parse_time("2026-03-01T12:00:00Z") == NOW
    assert parse_time("2026-03-01T13:00:00+01:00") == NOW
    assert parse_time("2026-03-01T12:00:00") == NOW
    assert parse_time("yesterday") is None and parse_time(None) is None and parse_time(3) is None


def test_idle_servers_past_the_threshold_most_idle_first_with_their_session():
    servers = parse_servers(
        [
            user("alice", **{"": {"last_activity": ago(61)}, "old": {"last_activity": ago(600)}}),
            user("bob", **{"": {"last_activity": ago(59)}}),
            user("carol", **{"": {"last_activity": None, "started": ago(120)}}),
            user("dave", **{"": {"last_activity": None, "started": None}}),
        ]
    )
    log = [
        session("alice", "", D1, start="2026-03-01T10:00"),
        session("alice", "", D2, start="2026-03-01T09:00"),  # an older, unstopped record
        session("alice", "old", D2),
        session("carol", "", D1, stop="2026-03-01T11:00"),
    ]
    found = idle_servers(servers, log, {"forecast": {"qa": D1}}, now=NOW, idle_after=3600)
    assert [(i.server.user, i.server.name) for i in found] == [
        ("alice", "old"),
        ("carol", ""),
        ("alice", ""),
    ]
    rows = [i.to_json() for i in found]
    assert rows[0]["digest"] == D2 and rows[0]["orphaned"] is True and rows[0]["stages"] == []
    assert (
        rows[0]["idle_seconds"] == 36000.0
        and rows[0]["last_activity"] == "2026-03-01T02:00:00.000000Z"
    )
    assert rows[1]["project"] is None and rows[1]["session"] is None  # stopped in the log
    assert rows[1]["orphaned"] is False
    assert rows[2]["digest"] == D1 and rows[2]["stages"] == ["qa"] and not rows[2]["orphaned"]
    assert rows[2]["session"]["reopen"] == {"session": "alice--2026-03-01T10:00"}
    assert idle_servers(servers, log, {}, now=NOW, idle_after=36001) == []


def test_idle_after_setting_default_example_and_validation():
    assert Lockstep().idle_after == 3600.0
    assert Lockstep(idle_after=60).idle_after == 60.0
    assert "c.Lockstep.idle_after = " in Lockstep.class_traits()["idle_after"].help
    with pytest.raises(TraitError, match="above 0"):
        Lockstep(idle_after=0)


def _serve(pages: list[dict], seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        offset = int(request.url.params["offset"])
        return httpx.Response(200, json=pages[offset // 2])

    return httpx.MockTransport(handler)


def test_hub_servers_follows_pagination_and_caches(monkeypatch):
    pages = [
        {
            "items": [user("a", **{"": {"last_activity": ago(1)}}), user("b")],
            "_pagination": {"next": {"offset": 2}},
        },
        {"items": [user("c", x={"last_activity": ago(2)})], "_pagination": {"next": None}},
    ]
    seen: list[httpx.Request] = []
    transport = _serve(pages, seen)
    real = httpx.AsyncClient
    monkeypatch.setattr(httpx, "AsyncClient", lambda **kw: real(transport=transport, **kw))
    reader = HubServers("http://hub/hub/api/", "secret-token")
    found = asyncio.run(reader.active())
    assert [(s.user, s.name) for s in found] == [("a", ""), ("c", "x")]
    assert asyncio.run(reader.active()) == found and len(seen) == 2  # cached
    assert seen[0].url.params["state"] == "active"
    assert seen[0].headers["Authorization"] == "token secret-token"


def test_hub_servers_names_the_hub_when_it_does_not_answer(monkeypatch):
    def refuse(request):
        raise httpx.ConnectError("connection refused")

    real = httpx.AsyncClient
    monkeypatch.setattr(
        httpx, "AsyncClient", lambda **kw: real(transport=httpx.MockTransport(refuse), **kw)
    )
    with pytest.raises(HubUnavailable, match="http://hub/hub/api did not list") as caught:
        asyncio.run(HubServers("http://hub/hub/api", "secret-token").active())
    assert "secret-token" not in str(caught.value)


def test_idle_section_escapes_and_says_how_long():
    evil = '<img src=x onerror="alert(1)">'
    row = {
        "user": evil,
        "server_name": "",
        "project": None,
        "digest": None,
        "stages": [],
        "orphaned": False,
        "idle_seconds": 2 * 86400 + 3 * 3600,
        "last_activity": ago(5),
    }
    html = page.idle_section({"idle_after": 3600, "servers": [row], "unavailable": None})
    assert "<img" not in html and "2d 3h" in html and "1h 00m" in html
    assert "(default)" in html and "not started by lockstep" in html
    assert page.idle_section(None) == ""
    down = page.idle_section({"idle_after": 60, "servers": [], "unavailable": evil})
    assert "<img" not in down and "1m" in down
    assert json.dumps(row)  # plain JSON
