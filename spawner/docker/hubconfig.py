"""Assemble a JupyterHub configuration for lockstep on Docker (demo, e2e tests, small sites).

``configure(c, ...)`` fills a traitlets ``Config`` the way ``jupyterhub_config.py`` would::

    # jupyterhub_config.py
    from spawner.docker.hubconfig import configure
    configure(c, environments_dir="/srv/lockstep/environments",
              data_roots=["/srv/data"], public_port=8000, hub_port=8081)

What it sets, and why:

* ``spawner_class``: ``LockstepDockerSpawner`` by import path (works without the entry
  point ``lockstep-docker`` being installed); ``c.Lockstep.*`` (environments, data roots,
  registry, data dir) for the spawner and the CLI alike;
* the Hub API binds ``hub_ip``: pass ``spawner.docker.hubnet.hub_address()``, the gateway
  of an empty lockstep bridge, which every project's containers reach through their own
  gateway and nothing off the host does; servers, the proxy and the Hub's services call
  it there (``hub_connect_url``), and lockstep's iptables rules admit, from project
  bridges, only the Hub's port on lockstep gateways. Without ``hub_ip`` the Hub binds
  ``0.0.0.0`` as DockerSpawner's docs suggest (login page and API on every interface of
  the host: only behind a host firewall) and containers call it at their own bridge's
  gateway. The public proxy port is bound to ``public_ip`` (loopback by default), the
  proxy API stays on loopback;
* ``cleanup_servers = False``: stopping or restarting the Hub leaves servers running, and
  the spawner's persisted state re-adopts them;
* ``jupyterhub-idle-culler`` as a Hub-managed service with the least scopes it needs,
  culling servers idle for ``idle_timeout`` seconds;
* the lockstep service (``spawner.hubservice``) at ``/services/lockstep/``, its roles, and
  every user's access to it (``service_config``; ``service_port`` 0 picks a free port);
* optional users, groups, admins and a fixed API token (tests, demos); with
  ``passwords_file`` (a 0600 JSON object user -> password), one password per user:
  ``spawner.docker.demoauth.PrecreatedNativeAuthenticator`` (jupyterhub-nativeauthenticator,
  sign-up off, the file's users pre-created and authorized), so no user can log in as
  another. ``password`` (one password for every listed user, JupyterHub's
  ``SharedPasswordAuthenticator``) is kept for the test suite's throwaway hubs only: anyone
  holding it logs in as anyone, so membership protects nothing; the demo never uses it.
* last, ``spawner.docker.traits.check_config(c)``: DockerSpawner traits already in ``c``
  that would weaken lockstep's hardening stop the hub at start, each named with its
  override (``c.LockstepDockerSpawner.allow_weakening``). A config file that sets more
  after ``configure`` ends with ``check_config(c)`` again (as ``examples/`` does).

It only writes into ``c``; nothing here touches the engine or the filesystem.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from spawner.docker.traits import check_config
from spawner.hubservice.config import service_config

CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
USER_PASSWORD_MIN = 8  # SharedPasswordAuthenticator's minimum lengths (JupyterHub 6)
ADMIN_PASSWORD_MIN = 32
TEST_SCOPES = ["admin:users", "admin:servers", "access:servers", "read:users", "admin:groups",
               "list:services", "read:services",
               "tokens", "list:users", "read:servers"]


def configure(
    c,
    *,
    environments_dir: str,
    data_roots: Sequence[str],
    data_dir: str = "",
    registry: str = "",
    stage_registries: Mapping[str, str] | None = None,
    public_ip: str = "127.0.0.1",
    public_port: int = 8000,
    hub_port: int = 8081,
    proxy_api_port: int = 8001,
    idle_timeout: int = 3600,
    cull_every: int = 0,
    users: Mapping[str, Sequence[str]] | None = None,
    admins: Sequence[str] = (),
    password: str = "",
    admin_password: str = "",
    api_token: str = "",
    state_dir: str = "",
    service_port: int = 0,
    hub_ip: str = "",
    passwords_file: str = "",
) -> None:
    """Fill ``c`` for a lockstep Docker hub. ``users`` maps group -> user names."""
    c.JupyterHub.spawner_class = "spawner.docker.spawner.LockstepDockerSpawner"
    c.Lockstep.environments_dir = environments_dir
    c.Lockstep.data_roots = list(data_roots)
    if data_dir:
        c.Lockstep.data_dir = data_dir
    if registry:
        c.Lockstep.registry = registry
    if stage_registries:
        c.Lockstep.stage_registries = dict(stage_registries)

    c.JupyterHub.bind_url = f"http://{public_ip}:{public_port}"
    if hub_ip:
        c.JupyterHub.hub_bind_url = f"http://{hub_ip}:{hub_port}"
        c.JupyterHub.hub_connect_ip = hub_ip
        c.LockstepDockerSpawner.hub_connect_url = f"http://{hub_ip}:{hub_port}"
    else:
        c.JupyterHub.hub_bind_url = f"http://0.0.0.0:{hub_port}"
        c.JupyterHub.hub_connect_ip = "127.0.0.1"
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api_port}"
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.allow_named_servers = True
    c.Spawner.start_timeout = 300
    c.Spawner.http_timeout = 60
    if state_dir:
        c.JupyterHub.db_url = f"sqlite:///{state_dir}/jupyterhub.sqlite"
        c.JupyterHub.cookie_secret_file = f"{state_dir}/jupyterhub_cookie_secret"
        c.ConfigurableHTTPProxy.pid_file = f"{state_dir}/jupyterhub-proxy.pid"

    services = [{
        "name": "idle-culler",
        "command": [sys.executable, "-m", "jupyterhub_idle_culler",
                    f"--timeout={int(idle_timeout)}",
                    f"--cull-every={int(cull_every or max(60, idle_timeout // 2))}"],
    }]
    roles = [{"name": "idle-culler", "scopes": CULLER_SCOPES, "services": ["idle-culler"]}]
    if api_token:
        services.append({"name": "lockstep-admin", "api_token": api_token})
        roles.append({"name": "lockstep-admin", "scopes": TEST_SCOPES,
                      "services": ["lockstep-admin"]})
    c.JupyterHub.services = services
    c.JupyterHub.load_roles = roles
    service_config(c, port=service_port)  # /services/lockstep/ (0: a free loopback port)

    if users is not None:
        everyone = sorted({u for members in users.values() for u in members} | set(admins))
        c.Authenticator.allowed_users = set(everyone)
        c.JupyterHub.load_groups = {g: {"users": sorted(m)} for g, m in users.items()}
    if admins:
        c.Authenticator.admin_users = set(admins)
    if passwords_file and password:
        raise ValueError("give passwords_file (one password per user) or password (shared, "
                         "tests only), not both")
    if passwords_file:
        c.JupyterHub.authenticator_class = (
            "spawner.docker.demoauth.PrecreatedNativeAuthenticator")
        c.PrecreatedNativeAuthenticator.passwords_file = passwords_file
        c.PrecreatedNativeAuthenticator.enable_signup = False
        c.PrecreatedNativeAuthenticator.open_signup = False
    if password:
        check_passwords(password, admin_password)
        c.JupyterHub.authenticator_class = "shared-password"
        c.SharedPasswordAuthenticator.user_password = password
        if admin_password:
            c.SharedPasswordAuthenticator.admin_password = admin_password
    check_config(c)  # last: DockerSpawner traits that weaken hardening stop the hub here


def check_passwords(password: str, admin_password: str = "") -> None:
    """Refuse what ``SharedPasswordAuthenticator`` would refuse, naming the fix, before the
    Hub starts (it would fail later with a traitlets error)."""
    if len(password) < USER_PASSWORD_MIN:
        raise ValueError(f"the hub password has {len(password)} characters; the shared-password "
                         f"authenticator needs at least {USER_PASSWORD_MIN}, e.g. "
                         "python3 -c 'import secrets; print(secrets.token_urlsafe(12))'")
    if admin_password and len(admin_password) < ADMIN_PASSWORD_MIN:
        raise ValueError(f"the hub admin password has {len(admin_password)} characters; it needs "
                         f"at least {ADMIN_PASSWORD_MIN}, e.g. "
                         "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
    if admin_password == password:
        raise ValueError("the hub admin password must differ from the users' password")
