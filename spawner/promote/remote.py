"""Promotion through the lockstep service: ``lockstep promote/approve/rollback --hub URL``.

The command line sends the caller's own hub API token (``$JUPYTERHUB_API_TOKEN``, or the
first line of ``--token-file``) to ``<hub>/services/lockstep/api/projects/<name>/<verb>``;
the service decides who the caller is and acts with its own registry credential. Nothing
here reads the trail or a registry. Every failure is a ``LockstepError`` worded for people
(an unreachable hub, a rejected token, a refusal with the service's own message); the
token is never printed.

``add_hub_arguments`` adds ``--hub``, ``--token-file`` and ``--service`` to a sub-command;
``HubService`` is the small client (httpx, a timeout on every call).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import httpx

from spawner.errors import LockstepError

TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
TIMEOUT = httpx.Timeout(30.0, read=900.0)  # gates (notebooks) may run for minutes


class RemoteError(LockstepError):
    """The service could not be asked, or refused."""


def add_hub_arguments(parser, *, required: bool = False) -> None:
    parser.add_argument(
        "--hub", metavar="URL", required=required,
        help="the hub's URL (e.g. https://hub.example.org): ask its lockstep service, which "
             "acts for your hub identity (token: $JUPYTERHUB_API_TOKEN or --token-file)")
    parser.add_argument("--token-file", metavar="FILE",
                        help="file whose first line is your hub API token")
    parser.add_argument("--service", default="lockstep", metavar="NAME",
                        help="the service's name on the hub (default: lockstep)")


def read_token(token_file: str | None, environ=os.environ) -> str:
    """The caller's hub API token: ``token_file``'s first line, else ``$JUPYTERHUB_API_TOKEN``."""
    if token_file:
        try:
            lines = Path(token_file).expanduser().read_text().splitlines()
        except OSError as exc:
            raise RemoteError(f"cannot read --token-file {token_file}: {exc.strerror}") from None
        token = lines[0].strip() if lines else ""
        if not token:
            raise RemoteError(f"--token-file {token_file} is empty; put your hub API token "
                              "on its first line (hub: Token page, 'Request new API token')")
        return token
    token = environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise RemoteError(f"no hub API token: set ${TOKEN_ENV} or pass --token-file FILE "
                          "(get one on the hub's Token page: <hub>/hub/token)")
    return token


class HubService:
    """The lockstep service behind ``hub`` (its public URL), asked with ``token``."""

    def __init__(self, hub: str, token: str, *, service: str = "lockstep", transport=None):
        self.hub = hub.rstrip("/")
        self.base = f"{self.hub}/services/{quote(service, safe='')}/"
        self._client = httpx.Client(timeout=TIMEOUT, transport=transport,
                                    headers={"Authorization": f"token {token}"})

    @classmethod
    def from_args(cls, args) -> HubService:
        return cls(args.hub, read_token(args.token_file), service=args.service)

    def __enter__(self) -> HubService:
        return self

    def __exit__(self, *exc) -> None:
        self._client.close()

    def call(self, method: str, project: str, verb: str, body: dict | None = None) -> dict:
        """The JSON answer of ``api/projects/<project>/<verb>``; 2xx and the refusals that
        carry an outcome (409, 502) are answers; anything else is a ``RemoteError``."""
        url = f"{self.base}api/projects/{quote(project, safe='')}/{verb}"
        try:
            response = self._client.request(method, url, json=body)
        except httpx.TransportError as exc:
            raise RemoteError(f"cannot reach the hub at {self.hub} ({exc.__class__.__name__}: "
                              f"{exc}); check --hub") from None
        data = _json(response)
        if response.status_code < 300 or (data and "outcome" in data):
            return data or {}
        raise RemoteError(_refusal(response.status_code, data, self.base))


def _json(response: httpx.Response) -> dict | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _refusal(status: int, data: dict | None, base: str) -> str:
    message = (data or {}).get("message") or ""
    if status == 403 and not message:
        message = "the hub refused your token (expired, or without access to the service)"
    if status == 404 and data is None:
        message = f"no lockstep service at {base}; check --hub and --service"
    if status in (301, 302, 303, 307):
        message = f"the hub asked for a browser login at {base}: send a hub API token"
    return f"the lockstep service refused ({status}): {message or 'no reason given'}"
