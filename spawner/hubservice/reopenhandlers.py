"""Tornado handlers for notebooks and reopening: ``api/projects/{name}/notebooks``,
``api/reopen`` and the ``notebooks`` page.

Same rules as ``handlers`` (hub OAuth or a hub API token; anonymous API calls get 403;
errors as JSON or a short page; no traceback reaches a user). ``api/reopen`` is a write:
a browser's form post must carry the hub's XSRF token (``_xsrf``), else the hub's
``HubOAuthenticated`` treats it as anonymous and it is refused; a form post is answered
with a redirect (303) to the server's landing address, an API call with JSON (202).

Must not: decide (``reopen``), list folders (``notebooks``), render HTML (``reopenpage``).
"""

from __future__ import annotations

from tornado import web

from spawner.hubservice import reopen, reopenpage
from spawner.hubservice.handlers import ApiHandler, BaseHandler


class ReopenMixin:
    """The hub's base URL and a ``ServerStarter`` client for the handler's hub."""

    def hub_base(self) -> str:
        prefix = self.hub_auth.hub_prefix  # "<base_url>hub/"
        return prefix[: -len("hub/")] if prefix.endswith("hub/") else "/"

    def servers(self) -> reopen.ServerStarter:
        return reopen.ServerStarter(self.identities.api_url)

    def user_token(self) -> str:
        token = self.hub_auth.get_token(self)
        if not token:
            raise web.HTTPError(
                403,
                "no hub token came with the request; log in through "
                "the hub or send Authorization: token ...",
            )
        return token


class NotebooksApi(ReopenMixin, ApiHandler):
    @web.authenticated
    async def get(self, name: str):
        self.answer(await reopen.list_notebooks(self.source, await self.requester(), name))


class ReopenApi(ReopenMixin, ApiHandler):
    @web.authenticated
    async def post(self):
        who = await self.requester()
        answer = await reopen.reopen(
            self.source, self.servers(), who, self.user_token(), self.params(), self.hub_base()
        )
        if self.from_form():
            self.redirect(answer["url"], status=303)
            return
        self.set_status(202)
        self.answer(answer)


class NotebooksPage(ReopenMixin, BaseHandler):
    """``notebooks?project=NAME``: the user's notebooks of a project, each with a button
    that reopens it on the digest it was saved with."""

    @web.authenticated
    async def get(self):
        who = await self.requester()
        name = self.get_argument("project", "")
        if not name:
            raise web.HTTPError(400, "which project? e.g. notebooks?project=forecast")
        listing = await reopen.list_notebooks(self.source, who, name)
        token = self.xsrf_token
        token = token.decode() if isinstance(token, bytes) else str(token)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(reopenpage.notebooks_page(self.base, who.name, listing, token))
