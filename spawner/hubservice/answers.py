"""Each API answer, assembled: visibility first, then the reads, then the pure builders.

One async function per route (the page reuses them), taking the ``Source`` and the
``Requester``. Every function that takes a project name calls
``visibility.visible_project`` before it reads anything about it, so a non-member's request
costs no registry read and learns nothing (404, worded as for a project that does not
exist). Sessions of other users reach only admins.

Must not: render HTML, touch tornado, or write anything.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from spawner.errors import LockstepError
from spawner.hubservice import idle, sessionsview, views
from spawner.hubservice.packagediff import diff_packages
from spawner.hubservice.source import Source
from spawner.hubservice.timeline import build_timeline
from spawner.hubservice.visibility import NotVisible, visible_project, visible_projects
from spawner.launch.access import Requester

SESSION_LIMIT = 500


async def projects(source: Source, who: Requester) -> dict:
    mine = visible_projects(source.catalog().projects, who)
    digests = await asyncio.gather(*(source.stage_digests(p.name) for p in mine))
    return {"projects": [views.project_summary(p, source.stages, d)
                         for p, d in zip(mine, digests, strict=True)]}


async def project(source: Source, who: Requester, name: str) -> dict:
    found = visible_project(source.catalog().projects, name, who)
    images = await source.stage_images(found.name)
    return views.project_detail(found, source.stages, images)


async def _side(source: Source, project: str, value: str, name: str) -> dict:
    kind, key = views.diff_side(value, stages=source.stages, name=name)
    if kind == "stage":
        images = await source.stage_images(project)
        if key not in images:
            raise NotVisible(f"stage {key!r} of project {project!r} holds no image yet; "
                             f"stages with an image: {', '.join(images) or '(none)'}")
        reference = images[key].reference
    else:
        reference = await source.locate(project, key)
    return {"kind": kind, "value": key, "reference": reference,
            "digest": reference.partition("@")[2]}


async def diff(source: Source, who: Requester, name: str, side_from: str, side_to: str) -> dict:
    found = visible_project(source.catalog().projects, name, who)
    before = await _side(source, found.name, side_from, "from")
    after = await _side(source, found.name, side_to, "to")
    old, new = await asyncio.gather(source.packages(before["reference"]),
                                    source.packages(after["reference"]))
    return {"project": found.name, "from": before, "to": after,
            "diff": diff_packages(old, new).to_json()}


async def timeline(source: Source, who: Requester, name: str, limit: int | None = None) -> dict:
    found = visible_project(source.catalog().projects, name, who)
    records = await asyncio.to_thread(source.trail, found.name)
    return build_timeline(records, project=found.name, stages=source.stages,
                          limit=limit).to_json()


async def sessions(source: Source, who: Requester) -> dict:
    every = await asyncio.to_thread(source.sessions)
    mine = sessionsview.own_sessions(every, who, limit=SESSION_LIMIT)
    out: dict = {"user": who.name, "admin": who.admin,
                 "sessions": [sessionsview.session_json(s) for s in mine]}
    if who.admin:
        live = sessionsview.running(every)
        names = sorted({s.project for s in live} & set(source.catalog().projects))
        digests = await asyncio.gather(*(source.stage_digests(n) for n in names))
        groups = sessionsview.admin_overview(live, dict(zip(names, digests, strict=True)))
        out["running"] = [g.to_json() for g in groups]
        out["orphaned"] = [g.to_json() for g in groups if g.orphaned]
        out["idle"] = await idle_answer(source, every)
    return out


async def idle_answer(source: Source, every: list) -> dict:
    """Admins only: servers idle for ``c.Lockstep.idle_after`` seconds, most idle first;
    ``unavailable`` names why the list is empty when the hub did not answer."""
    after = float(source.settings.idle_after)
    answer: dict = {"idle_after": after, "servers": [], "unavailable": None}
    if source.hub_servers is None:
        answer["unavailable"] = "this service was started without the hub's API"
        return answer
    try:
        servers = await source.hub_servers.active()
    except LockstepError as exc:
        answer["unavailable"] = str(exc)
        return answer
    live = sessionsview.running(every)
    names = sorted({s.project for s in live} & set(source.catalog().projects))
    digests = await asyncio.gather(*(source.stage_digests(n) for n in names))
    found = idle.idle_servers(servers, live, dict(zip(names, digests, strict=True)),
                              now=datetime.now(UTC), idle_after=after)
    answer["servers"] = [i.to_json() for i in found]
    return answer
