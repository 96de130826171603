"""The service's one way to open a client on the hub's REST API.

Every call the service makes to the hub (completing a user model, listing running servers,
starting a reopened server) goes through :func:`client`: the hub's ``api_url`` as the base,
the caller's token in the ``Authorization`` header, one timeout. Each caller keeps its own
reading of the answer and its own message when the hub does not answer. It holds no state
and never logs a token.
"""

from __future__ import annotations

import httpx


def client(api_url: str, token: str, *, timeout: float, accept: str = "") -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for paths relative to ``api_url`` (``users/NAME``...)."""
    headers = {"Authorization": f"token {token}"}
    if accept:
        headers["Accept"] = accept
    return httpx.AsyncClient(base_url=api_url.rstrip("/") + "/", headers=headers,
                             timeout=timeout)
