"""Tornado handlers of the lockstep service: the JSON API and the page.

Every handler is ``HubOAuthenticated``: a browser is sent through the hub's OAuth login and
comes back with a cookie; an API client sends ``Authorization: token <hub API token>``.
Access to the service itself needs the hub scope ``access:services!service=<name>``
(granted to every user by ``service_config``); what the user then sees is decided per
project by ``visibility``. API handlers answer an anonymous request with 403 (no
redirect) and every error as JSON ``{"status": N, "message": "..."}``; the page answers
errors as a short HTML page. A ``LockstepError`` keeps its message (they are written for
people); anything else is logged and answered with a generic message: no traceback ever
reaches a user.

Must not: build answers (``answers``), render HTML (``page``) or write anything.
"""

from __future__ import annotations

import json
import logging

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from spawner.errors import LockstepError
from spawner.hubservice import answers, page
from spawner.hubservice.identity import Identities
from spawner.hubservice.source import Source
from spawner.hubservice.svg import render_svg
from spawner.hubservice.timeline import build_timeline
from spawner.image.registry import RegistryUnavailable
from spawner.launch.access import Requester

log = logging.getLogger("lockstep.hubservice")
PAGE_MOVES = 200


def status_of(exc: BaseException) -> tuple[int, str]:
    """(HTTP status, message for the user) for an exception. Pure."""
    if isinstance(exc, web.HTTPError):
        return exc.status_code, exc.log_message or exc.reason or "request refused"
    if isinstance(exc, RegistryUnavailable):
        return 503, str(exc)
    if isinstance(exc, LockstepError):
        return int(getattr(exc, "status", 500)), str(exc)
    return 500, "the lockstep service failed to answer; the service log has the details"


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    """Shared: the source, the identity of the caller, error answers."""

    def initialize(self, source: Source, identities: Identities, base: str) -> None:
        self.source = source
        self.identities = identities
        self.base = base

    async def requester(self) -> Requester:
        return await self.identities.requester(self.current_user)

    def write_error(self, status_code: int, **kwargs) -> None:
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        status, message = status_of(exc) if exc is not None else (status_code, self._reason)
        self.render_error(status, message)

    def render_error(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(page.error_page(status, message))

    def log_exception(self, typ, value, tb) -> None:
        status, _ = status_of(value)
        if status >= 500 and not isinstance(value, LockstepError | web.HTTPError):
            log.error("lockstep service: %s %s failed", self.request.method,
                      self.request.uri, exc_info=(typ, value, tb))
        else:
            log.warning("lockstep service: %s %s: %s %s", self.request.method,
                        self.request.uri, status, value)


class ApiHandler(BaseHandler):
    """JSON in, JSON out; anonymous requests get 403, not a redirect."""

    def get_login_url(self):
        raise web.HTTPError(403, "send a hub API token (Authorization: token ...) or log in "
                                 "through the hub")

    def render_error(self, status: int, message: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status, "message": message}))

    def answer(self, data: dict) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data, sort_keys=True))


class ProjectsApi(ApiHandler):
    @web.authenticated
    async def get(self):
        self.answer(await answers.projects(self.source, await self.requester()))


class ProjectApi(ApiHandler):
    @web.authenticated
    async def get(self, name: str):
        self.answer(await answers.project(self.source, await self.requester(), name))


class DiffApi(ApiHandler):
    @web.authenticated
    async def get(self, name: str):
        side_from, side_to = self.get_argument("from", "dev"), self.get_argument("to", "qa")
        self.answer(await answers.diff(self.source, await self.requester(), name,
                                       side_from, side_to))


class TimelineApi(ApiHandler):
    @web.authenticated
    async def get(self, name: str):
        raw = self.get_argument("limit", "")
        if raw and not raw.isdigit():
            raise web.HTTPError(400, f"limit={raw!r} is not a whole number; e.g. ?limit=100")
        limit = int(raw) if raw else None
        self.answer(await answers.timeline(self.source, await self.requester(), name, limit))


class SessionsApi(ApiHandler):
    @web.authenticated
    async def get(self):
        self.answer(await answers.sessions(self.source, await self.requester()))


class HomePage(BaseHandler):
    """The page: projects, the selected project's diff and timeline, sessions."""

    @web.authenticated
    async def get(self):
        who = await self.requester()
        listing = await answers.projects(self.source, who)
        names = [p["name"] for p in listing["projects"]]
        selected = self.get_argument("project", names[0] if names else "")
        rows = [await answers.project(self.source, who, n) for n in names]
        body = [page.projects_section(self.base, rows, selected)]
        if selected:
            body += await self._project_parts(who, selected, rows)
        mine = await answers.sessions(self.source, who)
        body.append(page.sessions_section(mine["sessions"], mine.get("running")))
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(page.render_page(base=self.base, user=who.name, body=body))

    async def _project_parts(self, who: Requester, name: str, rows: list[dict]) -> list[str]:
        known = [row for row in rows if row["name"] == name]
        detail = known[0] if known else await answers.project(self.source, who, name)  # 404
        side_from, side_to = self.get_argument("from", "dev"), self.get_argument("to", "qa")
        try:
            found = await answers.diff(self.source, who, name, side_from, side_to)
            diff_html = page.diff_section(self.base, name, self.source.stages, found["diff"],
                                          side_from, side_to)
        except LockstepError as exc:
            diff_html = page.diff_section(self.base, name, self.source.stages, None,
                                          side_from, side_to, str(exc))
        records = self.source.trail(name)
        timeline = build_timeline(records, project=name, stages=self.source.stages,
                                  limit=PAGE_MOVES)
        moves = [m.to_json() for m in timeline.moves]
        return [page.detail_section(detail), diff_html,
                page.timeline_section(render_svg(timeline), moves, timeline.total)]
