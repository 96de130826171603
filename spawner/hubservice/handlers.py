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

Writes (``POST``: promote, approve, reject, rollback) take a JSON body from API clients or
a form from the page. The hub's auth decides both: a request with a hub API token is
token-authenticated; a cookie-authenticated (browser) ``POST`` must carry the hub's XSRF
token (``_xsrf``, rendered into every form of the page), or the hub's
``HubOAuthenticated`` treats it as anonymous and it is refused (403): a forged cross-site
post never acts. A form post is answered with a short HTML page; an API call with JSON.

Must not: build answers (``answers``), decide (``writes``), render HTML (``page``).
"""

from __future__ import annotations

import asyncio
import json
import logging

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from spawner.errors import LockstepError
from spawner.hubservice import answers, page, reopenpage
from spawner.hubservice.approvals import actions_for, is_approver
from spawner.hubservice.identity import Identities
from spawner.hubservice.source import Source
from spawner.hubservice.svg import render_svg
from spawner.hubservice.timeline import build_timeline
from spawner.hubservice.visibility import BadRequest
from spawner.hubservice.writes import Done, Writer
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

    def initialize(self, source: Source, identities: Identities, base: str,
                   writer: Writer | None = None) -> None:
        self.source = source
        self.identities = identities
        self.base = base
        self.writer = writer

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
        if self.from_form():
            return super().render_error(status, message)
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status, "message": message}))

    def answer(self, data: dict) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data, sort_keys=True))

    def from_form(self) -> bool:
        kind = self.request.headers.get("Content-Type", "")
        return self.request.method == "POST" and kind.startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data"))

    def params(self) -> dict[str, str]:
        """The POST's fields: a JSON object, or the form's fields."""
        if self.from_form():
            return {k: self.get_body_argument(k) for k in self.request.body_arguments}
        if not self.request.body.strip():
            return {}
        try:
            data = json.loads(self.request.body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise BadRequest("the body is not a JSON object; send e.g. {\"to\": \"qa\"}")
        return {k: str(v) for k, v in data.items() if v is not None}

    def field(self, params: dict[str, str], name: str, example: str) -> str:
        value = params.get(name, "").strip()
        if not value:
            raise BadRequest(f"{name!r} is missing; send e.g. {example}")
        return value

    def done(self, name: str, result: Done) -> None:
        if self.from_form():
            self.set_status(result.status)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            user = str((self.current_user or {}).get("name", ""))
            self.finish(page.result_page(self.base, name, result.body, user))
            return
        self.set_status(result.status)
        self.answer(result.body)


class PromoteApi(ApiHandler):
    @web.authenticated
    async def post(self, name: str):
        params = self.params()
        to = self.field(params, "to", '{"to": "qa"}')
        self.done(name, await self.writer.promote(await self.requester(), name, to,
                                                  params.get("digest") or None))


class ApproveApi(ApiHandler):
    @web.authenticated
    async def post(self, name: str):
        rid = self.field(self.params(), "request", '{"request": "0123abcd4567"}')
        self.done(name, await self.writer.approve(await self.requester(), name, rid))


class RejectApi(ApiHandler):
    @web.authenticated
    async def post(self, name: str):
        params = self.params()
        rid = self.field(params, "request", '{"request": "0123abcd4567", "reason": "..."}')
        self.done(name, await self.writer.reject(await self.requester(), name, rid,
                                                 params.get("reason", "")))


class RollbackApi(ApiHandler):
    @web.authenticated
    async def post(self, name: str):
        stage = self.field(self.params(), "stage", '{"stage": "prod"}')
        self.done(name, await self.writer.rollback(await self.requester(), name, stage))


class ApprovalsApi(ApiHandler):
    @web.authenticated
    async def get(self, name: str):
        self.answer(await self.writer.approvals(await self.requester(), name))


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
        body = [await self._waiting(who, names),
                page.projects_section(self.base, rows, selected)]
        if selected:
            body += await self._project_parts(who, selected, rows)
        mine = await answers.sessions(self.source, who)
        if selected:
            body.append(reopenpage.notebooks_link(self.base, selected))
        body.append(page.sessions_section(mine["sessions"], mine.get("running"),
                                          reopenpage.session_cell(self.base, self._xsrf())))
        body.append(page.idle_section(mine.get("idle")))
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
        return [page.detail_section(detail), await self._actions(who, name), diff_html,
                page.timeline_section(render_svg(timeline), moves, timeline.total)]

    async def _waiting(self, who: Requester, names: list[str]) -> str:
        if self.writer is None or not is_approver(who, self.writer.approvers):
            return ""
        every = await asyncio.to_thread(self.writer.book.requests)
        mine = [r for r in every if r.project in names and r.pending
                and r.requested_by != who.name]
        return page.waiting_section(self.base, mine)

    async def _actions(self, who: Requester, name: str) -> str:
        if self.writer is None:
            return ""
        pending = await asyncio.to_thread(self.writer.book.requests, name)
        acts = actions_for(who, self.source.stages, self.writer.approvers, pending)
        return page.actions_section(self.base, name, self.source.stages, acts, self._xsrf())

    def _xsrf(self) -> str:
        token = self.xsrf_token
        return token.decode() if isinstance(token, bytes) else str(token)
