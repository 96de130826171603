"""Who is asking: the hub user behind the request's OAuth cookie or API token.

JupyterHub's ``HubOAuth`` answers the token's owner with the fields the token may read:
an OAuth login token holds only the *identify* scopes (name and groups), an API token
usually everything. ``requester_from_model`` makes a ``spawner.launch.access.Requester``
from such a model (pure); when the model lacks ``admin`` or ``groups``, ``Identities``
asks the hub's REST API with the service's own token (``read:users``, granted by
``spawner.hubservice.config.service_config``), remembered for ``TTL`` seconds.

Guarantees: the identity is always the hub's word, never a request parameter; a hub that
does not answer the lookup makes the user a non-admin with the groups the token showed
(least privilege), and the failure is logged. It must not decide what the user may see.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from urllib.parse import quote

import httpx

from spawner.hubservice import hubapi
from spawner.launch.access import Requester

TTL = 30.0
log = logging.getLogger("lockstep.hubservice")


def requester_from_model(model: Mapping, *, extra: Mapping | None = None) -> Requester:
    """A ``Requester`` from a hub user model, completed by ``extra`` (a full model). Pure."""
    merged = {**(extra or {}), **{k: v for k, v in model.items() if v is not None}}
    groups = merged.get("groups") or ()
    return Requester(name=str(merged["name"]),
                     groups=frozenset(str(g) for g in groups),
                     admin=bool(merged.get("admin", False)))


def complete(model: Mapping) -> bool:
    """Whether ``model`` already says both ``admin`` and ``groups``."""
    return "admin" in model and "groups" in model


class Identities:
    """Completes user models through the hub API (``api_url``, the service's ``api_token``)."""

    def __init__(self, api_url: str, api_token: str, timeout: float = 10.0):
        self.api_url = api_url.rstrip("/")
        self.api_token = api_token
        self.timeout = timeout
        self._known: dict[str, tuple[float, dict]] = {}

    async def requester(self, model: Mapping) -> Requester:
        if complete(model):
            return requester_from_model(model)
        name = str(model["name"])
        stamp, full = self._known.get(name, (0.0, None))
        if full is None or time.monotonic() - stamp > TTL:
            full = await self._lookup(name)
            if full is not None:
                self._known[name] = (time.monotonic(), full)
        return requester_from_model(model, extra=full)

    async def _lookup(self, name: str) -> dict | None:
        try:
            async with hubapi.client(self.api_url, self.api_token,
                                     timeout=self.timeout) as client:
                response = await client.get(f"users/{quote(name, safe='')}")
            response.raise_for_status()
            return dict(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("lockstep service: cannot read hub user %s (%s); treating as non-admin",
                        name, exc)
            return None
