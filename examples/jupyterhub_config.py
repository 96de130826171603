"""JupyterHub config for the lockstep demo on one Docker host.

Run from the repository root (after ``scripts/setup.sh``, ``lockstep registry start`` and
``lockstep build environments/<p>`` for the projects you want to offer)::

    sudo .venv/bin/jupyterhub -f examples/jupyterhub_config.py

then open http://127.0.0.1:8000 and log in as alice, bob or carol with the password in
``$LOCKSTEP_DEMO_PASSWORD`` (default ``lockstep``). Everything is assembled by
``spawner.hubconfig.configure``; its docstring explains each choice (hub on 0.0.0.0:8081
reached by containers at their bridge gateway, firewall, servers surviving hub restarts,
idle culler). The hub runs as root because the spawner writes iptables rules; set
``c.LockstepDockerSpawner.firewall = False`` to run it unprivileged (with access to the
Docker socket) when the host firewall is managed elsewhere.
"""

import os
from pathlib import Path

from spawner.hubconfig import configure

c = get_config()  # noqa: F821 - provided by JupyterHub
repo = Path(__file__).resolve().parents[1]
state = Path(os.environ.get("LOCKSTEP_DEMO_STATE", Path.home() / ".local/share/lockstep/hub"))
state.mkdir(parents=True, exist_ok=True)

configure(
    c,
    environments_dir=str(repo / "environments"),
    data_roots=[str(repo / "data")],
    data_dir=os.environ.get("LOCKSTEP_DATA_DIR", ""),  # default ~/.local/share/lockstep
    registry=os.environ.get("LOCKSTEP_REGISTRY", "127.0.0.1:5000/lockstep"),
    public_ip=os.environ.get("LOCKSTEP_DEMO_IP", "127.0.0.1"),
    public_port=int(os.environ.get("LOCKSTEP_DEMO_PORT", "8000")),
    hub_port=int(os.environ.get("LOCKSTEP_HUB_PORT", "8081")),
    idle_timeout=int(os.environ.get("LOCKSTEP_IDLE_TIMEOUT", "3600")),
    users={"analysts": ["bob"], "ml": ["carol"], "everyone": ["alice", "bob", "carol"]},
    admins=["admin"],
    password=os.environ.get("LOCKSTEP_DEMO_PASSWORD", "lockstep"),
    api_token=os.environ.get("LOCKSTEP_DEMO_TOKEN", ""),
    state_dir=str(state),
)
