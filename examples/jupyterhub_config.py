"""JupyterHub config for the lockstep demo on one Docker host (what ``scripts/demo.sh`` runs).

``scripts/demo.sh`` sets everything below up and starts the hub with this file. By hand,
from the repository root (after ``scripts/setup.sh``, ``lockstep registry start`` and
``lockstep build environments/<p>`` for the projects you want to offer)::

    export LOCKSTEP_DEMO_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')
    sudo -E .venv/bin/jupyterhub -f examples/jupyterhub_config.py

then open http://127.0.0.1:8000 and log in as alice, bob or carol with that password
(JupyterHub's shared-password authenticator; only the users below may log in). The user
``admin`` logs in with ``$LOCKSTEP_DEMO_ADMIN_PASSWORD`` (32+ characters, another one);
without it admins cannot log in. There is no default password.

Everything is assembled by ``spawner.docker.hubconfig.configure``; its docstring explains each
choice (hub on 0.0.0.0:8081 reached by containers at their bridge gateway, firewall,
servers surviving hub restarts, idle culler). The hub runs as root because the spawner
writes iptables rules; set ``c.LockstepDockerSpawner.firewall = False`` to run it
unprivileged (with access to the Docker socket) when the host firewall is managed elsewhere.

Environment: ``LOCKSTEP_DEMO_PORT`` (public, 8000), ``LOCKSTEP_HUB_PORT`` (8081),
``LOCKSTEP_PROXY_API_PORT`` (8001), ``LOCKSTEP_DEMO_IP`` (127.0.0.1), ``LOCKSTEP_DEMO_STATE``
(hub database and cookie secret, ``~/.local/share/lockstep/demo``), ``LOCKSTEP_DATA_DIR``,
``LOCKSTEP_REGISTRY``, ``LOCKSTEP_IDLE_TIMEOUT``, ``LOCKSTEP_DEMO_ID`` (a label value put on
the demo's containers, so ``scripts/demo.sh --stop`` removes only those).
"""

import os
import sys
from pathlib import Path

from spawner.docker.hubconfig import configure

c = get_config()  # noqa: F821 - provided by JupyterHub
repo = Path(__file__).resolve().parents[1]
password = os.environ.get("LOCKSTEP_DEMO_PASSWORD", "")
if not password:
    sys.exit(
        "examples/jupyterhub_config.py: LOCKSTEP_DEMO_PASSWORD is not set; the demo hub has no "
        "default password. Run scripts/demo.sh (it generates one and prints it), or export "
        "LOCKSTEP_DEMO_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')"
    )
state = Path(os.environ.get("LOCKSTEP_DEMO_STATE", Path.home() / ".local/share/lockstep/demo"))
state.mkdir(parents=True, exist_ok=True)

# Hub groups, matching the example projects' members (environments/*/project.yaml):
# forecast: users [alice], groups [analysts]; vision: users [carol], groups [ml];
# sandbox: users [alice, carol]. The admin may launch every project.
configure(
    c,
    environments_dir=str(repo / "environments"),
    data_roots=[str(repo / "data")],
    data_dir=os.environ.get("LOCKSTEP_DATA_DIR", ""),  # default ~/.local/share/lockstep
    registry=os.environ.get("LOCKSTEP_REGISTRY", "127.0.0.1:5000/lockstep"),
    public_ip=os.environ.get("LOCKSTEP_DEMO_IP", "127.0.0.1"),
    public_port=int(os.environ.get("LOCKSTEP_DEMO_PORT", "8000")),
    hub_port=int(os.environ.get("LOCKSTEP_HUB_PORT", "8081")),
    proxy_api_port=int(os.environ.get("LOCKSTEP_PROXY_API_PORT", "8001")),
    idle_timeout=int(os.environ.get("LOCKSTEP_IDLE_TIMEOUT", "3600")),
    users={"analysts": ["bob"], "ml": ["carol"], "everyone": ["alice", "bob", "carol"]},
    admins=["admin"],
    password=password,
    admin_password=os.environ.get("LOCKSTEP_DEMO_ADMIN_PASSWORD", ""),
    api_token=os.environ.get("LOCKSTEP_DEMO_TOKEN", ""),
    state_dir=str(state),
)
if os.environ.get("LOCKSTEP_DEMO_ID"):
    c.LockstepDockerSpawner.extra_labels = {"org.lockstep-demo.id": os.environ["LOCKSTEP_DEMO_ID"]}
