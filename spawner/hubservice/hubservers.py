"""The hub's running servers, read through its REST API for the admin's idle list.

``HubServers.active()`` asks ``GET /users?state=active`` (JupyterHub's pagination, 200 a
page) with the service's own token, which ``service_config`` grants ``list:users``,
``read:users`` and ``read:servers`` (the server models with their ``last_activity``), and
parses the answer with ``spawner.hubservice.idle.parse_servers``. One read serves every
request for ``TTL`` seconds.

Guarantees: read-only; every call has a timeout; a hub that does not answer raises
``HubUnavailable`` naming the hub URL and the error (no token in it), so the page can say
so instead of failing. It must not decide who sees the servers.
"""

from __future__ import annotations

import time

import httpx

from spawner.errors import LockstepError
from spawner.hubservice import hubapi
from spawner.hubservice.idle import HubServer, parse_servers

TTL = 5.0
PAGE = 200
MAX_PAGES = 500
PAGINATION = "application/jupyterhub-pagination+json"


class HubUnavailable(LockstepError):
    """The hub's API did not answer the server list."""


class HubServers:
    """Running servers from the hub at ``api_url`` (with the service's ``api_token``)."""

    def __init__(self, api_url: str, api_token: str, timeout: float = 10.0):
        self.api_url = api_url.rstrip("/")
        self.api_token = api_token
        self.timeout = timeout
        self._known: tuple[float, list[HubServer]] | None = None

    async def active(self) -> list[HubServer]:
        if self._known and time.monotonic() - self._known[0] < TTL:
            return self._known[1]
        users = await self._users()
        found = parse_servers(users)
        self._known = (time.monotonic(), found)
        return found

    async def _users(self) -> list[dict]:
        users: list[dict] = []
        offset = 0
        try:
            async with hubapi.client(self.api_url, self.api_token, timeout=self.timeout,
                                     accept=PAGINATION) as client:
                for _ in range(MAX_PAGES):
                    response = await client.get(
                        "users",
                        params={"state": "active", "offset": offset, "limit": PAGE},
                    )
                    response.raise_for_status()
                    body = response.json()
                    items = body.get("items", []) if isinstance(body, dict) else body
                    users.extend(u for u in items if isinstance(u, dict))
                    following = (
                        (body.get("_pagination") or {}).get("next")
                        if isinstance(body, dict)
                        else None
                    )
                    if not following or not items:
                        break
                    offset = int(following.get("offset", offset + len(items)))
        except (httpx.HTTPError, ValueError) as exc:
            raise HubUnavailable(
                f"the hub at {self.api_url} did not list its servers "
                f"({type(exc).__name__}: {exc}); idle servers are shown "
                "again once it answers"
            ) from None
        return users
