"""Add the lockstep service to a JupyterHub configuration: ``service_config(c)``.

In ``jupyterhub_config.py``, after the ``c.Lockstep.*`` settings::

    from spawner.hubservice.config import service_config
    service_config(c)                      # served at /services/lockstep/
    service_config(c, port=10101)          # a fixed port instead of a free one

It appends to ``c.JupyterHub.services`` a managed service (the hub starts
``python -m spawner.hubservice`` and proxies ``/services/<name>/`` to it) and to
``c.JupyterHub.load_roles`` the roles it needs:

* ``lockstep-service``, held by the service: ``list:users`` and ``read:users`` (a user's
  admin flag and groups, which an OAuth login token does not carry) and ``read:servers``
  (each server's ``last_activity``, for the admins' list of idle servers; no server state);
* the default ``user`` role gains ``access:services!service=<name>``, so every hub user may
  log in to the service (what they then see is decided per project by membership).

A user's login token for the service (OAuth) also carries ``servers!user``: the user's
own servers, which the service uses only to start a named server of that user when they
reopen a notebook or a session on its exact image (``spawner.hubservice.reopen``); the
service itself holds no right to start anyone's server.

The service is the one writer of stage pointers after the first stage, so it alone needs
the registry's write credential: ``registry_credentials`` names a Docker config folder
(``config.json`` with ``auths``) readable by the hub's user only, and becomes the
service's ``DOCKER_CONFIG``; users' servers never see it::

    service_config(c, registry_credentials="/etc/lockstep/registry")

The ``c.Lockstep`` values set so far travel to the service as JSON in its environment
(``$LOCKSTEP_SERVICE_SETTINGS``), so the hub and the service read one configuration; set
them before calling. Writes into ``c`` only; with ``port=0`` it asks the OS for a free
loopback port once (the only thing it does outside ``c``).
"""

from __future__ import annotations

import json
import socket
import sys

from traitlets.config import LazyConfigValue

SERVICE_NAME = "lockstep"
BIND_ENV = "LOCKSTEP_SERVICE_BIND"
SERVICE_ROLE = "lockstep-service"
SERVICE_SCOPES = ["list:users", "read:users", "read:servers"]
USER_ROLE_SCOPES = ["self"]
USER_TOKEN_SCOPES = ["servers!user"]


def free_port(ip: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return sock.getsockname()[1]


def lockstep_values(c) -> dict:
    """The plain ``c.Lockstep`` values set so far (lazy list/dict edits resolved). Pure."""
    section = c.Lockstep if "Lockstep" in c else {}
    out = {}
    for key, value in section.items():
        if isinstance(value, LazyConfigValue):
            continue  # c.Lockstep.x.append(...) without a base: the service keeps its default
        out[key] = list(value) if isinstance(value, set | tuple) else value
    return json.loads(json.dumps(out, default=str))


def _listed(section, key: str) -> list[dict]:
    """``c.JupyterHub.<key>`` as a list ([] when unset; a lazy ``append`` is resolved)."""
    value = section.get(key) if key in section else []
    if isinstance(value, LazyConfigValue):
        value = value.get_value([])
    return list(value or [])


def user_role(roles: list[dict], name: str) -> dict:
    """The ``user`` role of ``roles`` (added when absent) granting access to service ``name``."""
    role = next((r for r in roles if r.get("name") == "user"), None)
    if role is None:
        role = {"name": "user", "scopes": list(USER_ROLE_SCOPES)}
        roles.append(role)
    scope = f"access:services!service={name}"
    role["scopes"] = sorted(set(role.get("scopes") or USER_ROLE_SCOPES) | {scope})
    return role


def service_config(c, *, name: str = SERVICE_NAME, port: int = 0, ip: str = "127.0.0.1",
                   python: str = sys.executable,
                   registry_credentials: str | None = None, host: str = "") -> dict:
    """Add the lockstep service and its roles to ``c``; returns the service entry.

    ``host``: the name the proxy reaches the service by when that is not ``ip`` (in the
    chart, the hub's Kubernetes Service); the service then binds ``ip`` (``0.0.0.0``)."""
    environment = {"LOCKSTEP_SERVICE_SETTINGS": json.dumps(lockstep_values(c))}
    if registry_credentials:
        environment["DOCKER_CONFIG"] = str(registry_credentials)
    if host:
        environment[BIND_ENV] = ip
    entry = {
        "name": name,
        "url": f"http://{host or ip}:{port or free_port(ip)}",
        "command": [python, "-m", "spawner.hubservice"],
        "environment": environment,
        "oauth_no_confirm": True,
        # a user's login token may start that user's own servers (reopen on an exact image)
        "oauth_client_allowed_scopes": list(USER_TOKEN_SCOPES),
        "display": True,
    }
    services = [s for s in _listed(c.JupyterHub, "services") if s.get("name") != name]
    c.JupyterHub.services = [*services, entry]
    roles = [r for r in _listed(c.JupyterHub, "load_roles") if r.get("name") != SERVICE_ROLE]
    roles.append({"name": SERVICE_ROLE, "description": "lockstep service: read hub users",
                  "scopes": list(SERVICE_SCOPES), "services": [name]})
    user_role(roles, name)
    c.JupyterHub.load_roles = roles
    return entry
