"""The lockstep service's tornado application and the process the hub starts.

``ROUTES`` is the one list of what the service answers, as OpenAPI-style templates
relative to the service prefix (``api/projects/{name}``); ``docs/openapi.yaml`` documents
exactly these (a unit test holds both to each other). ``make_app`` turns them into tornado
routes under the prefix. ``main`` is what ``python -m spawner.hubservice`` runs: it
reads the hub's service environment (``JUPYTERHUB_SERVICE_URL``,
``JUPYTERHUB_SERVICE_PREFIX``, ``JUPYTERHUB_API_URL``, ``JUPYTERHUB_API_TOKEN``), the
site settings (``$LOCKSTEP_SERVICE_SETTINGS``, JSON of ``c.Lockstep`` written by
``service_config``, then ``$LOCKSTEP_CONFIG``) and serves.

Guarantees: it binds only the address the hub gave it (or ``$LOCKSTEP_SERVICE_BIND``,
which ``service_config(host=...)`` sets for the chart); a missing hub variable stops it
with a message naming the variable and how the service is meant to be started; the trail
and the session log are read once before it takes requests. Writes (stage pointers, the
trail, ``approvals.jsonl``) happen only in ``spawner.hubservice.writes``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import signal
import sys
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from tornado import web
from traitlets.config import Config

from spawner.errors import LockstepError
from spawner.hubservice import handlers, reopenhandlers
from spawner.hubservice.config import BIND_ENV
from spawner.hubservice.hubservers import HubServers
from spawner.hubservice.identity import Identities
from spawner.hubservice.source import Source
from spawner.hubservice.writes import Writer
from spawner.settings import load_settings

ROUTES = (
    ("", handlers.HomePage),
    ("oauth_callback", HubOAuthCallbackHandler),
    ("api/projects", handlers.ProjectsApi),
    ("api/projects/{name}", handlers.ProjectApi),
    ("api/projects/{name}/diff", handlers.DiffApi),
    ("api/projects/{name}/timeline", handlers.TimelineApi),
    ("api/projects/{name}/approvals", handlers.ApprovalsApi),
    ("api/projects/{name}/promote", handlers.PromoteApi),
    ("api/projects/{name}/approve", handlers.ApproveApi),
    ("api/projects/{name}/reject", handlers.RejectApi),
    ("api/projects/{name}/rollback", handlers.RollbackApi),
    ("api/sessions", handlers.SessionsApi),
    ("api/projects/{name}/notebooks", reopenhandlers.NotebooksApi),
    ("api/reopen", reopenhandlers.ReopenApi),
    ("notebooks", reopenhandlers.NotebooksPage),
)
SETTINGS_ENV = "LOCKSTEP_SERVICE_SETTINGS"
HUB_ENV = ("JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN")
log = logging.getLogger("lockstep.hubservice")


def route_regex(template: str) -> str:
    """``api/projects/{name}`` -> ``api/projects/(?P<name>[^/]+)``. Pure."""
    return re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)


def make_app(source: Source, *, prefix: str, identities: Identities,
             cookie_secret: bytes | None = None, writer: Writer | None = None) -> web.Application:
    """The tornado application serving ``ROUTES`` under ``prefix`` (``/services/NAME/``)."""
    prefix = prefix if prefix.endswith("/") else prefix + "/"
    if writer is None and source is not None:
        writer = Writer(source)
    shared = {"source": source, "identities": identities, "base": prefix, "writer": writer}
    rules = []
    for template, handler in ROUTES:
        path = url_path_join(prefix, route_regex(template)) + ("/?" if template else "")
        kwargs = {} if handler is HubOAuthCallbackHandler else shared
        rules.append(web.url(path.replace("//?", "/?"), handler, kwargs))
    return web.Application(rules, cookie_secret=cookie_secret or secrets.token_bytes(32),
                           xsrf_cookies=False)


def settings_from_env(environ=os.environ):
    """Site settings: the hub config's ``c.Lockstep`` (JSON), then ``$LOCKSTEP_CONFIG``."""
    config = Config()
    raw = environ.get(SETTINGS_ENV, "")
    if raw:
        try:
            values = json.loads(raw)
        except ValueError as exc:
            raise LockstepError(f"${SETTINGS_ENV} is not JSON ({exc}); it is written by "
                                "spawner.hubservice.config.service_config") from None
        for key, value in values.items():
            setattr(config.Lockstep, key, value)
    return load_settings(config=config)


def _hub_environment(environ) -> dict[str, str]:
    missing = [name for name in HUB_ENV if not environ.get(name)]
    if missing:
        raise LockstepError(
            f"{', '.join(missing)} not set: the lockstep service is started by JupyterHub as "
            "a managed service; add it to jupyterhub_config.py with "
            "`from spawner.hubservice.config import service_config; service_config(c)`")
    return {name: environ[name] for name in HUB_ENV}


async def serve(environ=os.environ) -> None:
    hub = _hub_environment(environ)
    url = urlsplit(hub["JUPYTERHUB_SERVICE_URL"])
    prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/lockstep/")
    source = Source(settings_from_env(environ))
    await asyncio.to_thread(source.warm)  # the first page must not pay for parsing the logs
    identities = Identities(hub["JUPYTERHUB_API_URL"], hub["JUPYTERHUB_API_TOKEN"])
    source.hub_servers = HubServers(hub["JUPYTERHUB_API_URL"], hub["JUPYTERHUB_API_TOKEN"])
    app = make_app(source, prefix=prefix, identities=identities)
    bind = environ.get(BIND_ENV) or url.hostname or "127.0.0.1"  # the chart: 0.0.0.0
    app.listen(url.port or 80, bind, xheaders=True)
    log.info("lockstep service on %s%s", hub["JUPYTERHUB_SERVICE_URL"], prefix)
    await asyncio.Event().wait()


def main(argv=None) -> int:
    # started by a hub that was itself started in the background, this process inherits
    # SIGINT ignored; JupyterHub stops a managed service with SIGINT first and waits for it
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s %(name)s] "
                        "%(message)s")
    try:
        asyncio.run(serve())
    except LockstepError as exc:
        print(f"lockstep service: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0
