"""JupyterHub config for the lockstep demo on one Docker host (what ``scripts/demo.sh`` runs).

``scripts/demo.sh`` sets everything below up and starts the hub with this file. By hand,
from the repository root (after ``scripts/setup.sh``, ``lockstep registry start`` and
``lockstep build environments/<p>`` for the projects you want to offer), write one password
per user into ``$LOCKSTEP_DEMO_STATE/passwords.json`` (mode 0600)::

    {"alice": "...", "bob": "...", "carol": "...", "admin": "..."}

    sudo -E .venv/bin/jupyterhub -f examples/jupyterhub_config.py

then open http://127.0.0.1:8000 and log in as alice, bob, carol or admin, each with their
own password (``jupyterhub-nativeauthenticator``: the users of the file are created and
authorized at hub start, sign-up is off, a user may change their password at
``/hub/change-password``). ``scripts/demo.sh`` generates the file on its first run and
prints each user's password. There is no default password and no shared one.

Everything is assembled by ``spawner.docker.hubconfig.configure``; its docstring explains each
choice (the hub API on the gateway of an empty lockstep bridge, ``hub_address()``, reached
by every project's containers and by nothing off the host, never on 0.0.0.0; firewall,
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
from pathlib import Path

from spawner.docker.hubconfig import configure
from spawner.docker.hubnet import hub_address
from spawner.docker.spawner import check_config

c = get_config()  # noqa: F821 - provided by JupyterHub
repo = Path(__file__).resolve().parents[1]
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
    hub_ip=hub_address(),  # the gateway of the lockstep--hub bridge, not 0.0.0.0
    proxy_api_port=int(os.environ.get("LOCKSTEP_PROXY_API_PORT", "8001")),
    idle_timeout=int(os.environ.get("LOCKSTEP_IDLE_TIMEOUT", "3600")),
    users={"analysts": ["bob"], "ml": ["carol"], "everyone": ["alice", "bob", "carol"]},
    admins=["admin"],
    passwords_file=str(state / "passwords.json"),  # one per user; scripts/demo.sh makes it
    api_token=os.environ.get("LOCKSTEP_DEMO_TOKEN", ""),
    state_dir=str(state),
)
# notebooks/<project>/ fill a project's workspace when its first server creates it
# (c.LockstepDockerSpawner.seed_workspace); promotion gates run them too
c.Lockstep.notebooks_dir = str(repo / "notebooks")
if os.environ.get("LOCKSTEP_DEMO_ID"):
    c.LockstepDockerSpawner.extra_labels = {"org.lockstep-demo.id": os.environ["LOCKSTEP_DEMO_ID"]}

# Last line: refuse, at hub start, DockerSpawner settings that would weaken the containers'
# hardening (privileged, root, cap_add, host namespaces...), naming each and its override.
check_config(c)
