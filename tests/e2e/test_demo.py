"""The README's run command, proven: ``scripts/demo.sh --check`` on free ports.

``--check`` does what ``scripts/demo.sh`` does (setup, offline test channel, registry, lock
and build of every example project, forecast promoted to qa, the real hub from
``examples/jupyterhub_config.py``), then logs in as alice through the login form (after
seeing a wrong password, each other's passwords for alice and bob, and an unlisted user
refused), starts forecast from the spawn
form (at qa, the stage the form preselects), reads ``/data/sales/sales.csv`` in a kernel
and tears down. It runs twice: the second run must reuse the state (same passwords), the
locks and the images.

State, data dir and ports are the test's own; the registry is fixture ``registry``
(127.0.0.1:5000), which the demo reuses and must leave running.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
from traitlets.config import PyFileConfigLoader

from tests.e2e.hubtools import REPO_ROOT, free_port

pytestmark = pytest.mark.e2e

HUB_CONFIG = REPO_ROOT / "examples" / "jupyterhub_config.py"
PROJECTS = ("forecast", "sandbox", "vision")
TIMES: dict[str, float] = {}


def _demo_objects(docker_api) -> tuple[set[str], set[str]]:
    """Names of the volumes and networks lockstep made for the example projects."""
    def ours(labels) -> bool:
        return (labels or {}).get("org.lockstep.project") in PROJECTS

    managed = {"label": "org.lockstep.managed=true"}
    volumes = (docker_api.volumes(filters=managed) or {}).get("Volumes") or []
    return ({v["Name"] for v in volumes if ours(v.get("Labels"))},
            {n["Name"] for n in docker_api.networks(filters=managed) if ours(n.get("Labels"))})


@pytest.fixture
def demo_env(tmp_path, registry, docker_api):
    env = {**os.environ,
           "LOCKSTEP_DEMO_STATE": str(tmp_path / "state"),
           "LOCKSTEP_DATA_DIR": str(tmp_path / "data"),
           "LOCKSTEP_DEMO_PORT": str(free_port()),
           "LOCKSTEP_HUB_PORT": str(free_port()),
           "LOCKSTEP_PROXY_API_PORT": str(free_port()),
           "PYTHONUNBUFFERED": "1"}
    for name in ("LOCKSTEP_DEMO_CHECK", "LOCKSTEP_DEMO_CHANNEL", "LOCKSTEP_CONFIG",
                 "LOCKSTEP_DEMO_PASSWORD", "LOCKSTEP_DEMO_ADMIN_PASSWORD"):
        env.pop(name, None)
    volumes, networks = _demo_objects(docker_api)
    yield env
    # what the check created for the example projects (its containers are gone already)
    new_volumes, new_networks = _demo_objects(docker_api)
    for name in new_networks - networks:
        docker_api.remove_network(name)
    for name in new_volumes - volumes:
        docker_api.remove_volume(name, force=True)


def run_check(env: dict) -> str:
    began = time.monotonic()
    done = subprocess.run([str(REPO_ROOT / "scripts/demo.sh"), "--check"], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=1800)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"scripts/demo.sh --check exit {done.returncode}:\n" + \
        output[-6000:] + _hub_log_tail(env)
    TIMES[f"run {len(TIMES) + 1}"] = time.monotonic() - began
    return output


def _hub_log_tail(env: dict) -> str:
    log = Path(env["LOCKSTEP_DEMO_STATE"]) / "hub.log"
    return "\n--- hub log ---\n" + "\n".join(log.read_text().splitlines()[-60:]) \
        if log.exists() else ""


def port_closed(port: str) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", int(port))) != 0


def test_demo_check_cold_then_warm(demo_env, registry, docker_api):
    state = Path(demo_env["LOCKSTEP_DEMO_STATE"])
    url = f"http://127.0.0.1:{demo_env['LOCKSTEP_DEMO_PORT']}"
    out = run_check(demo_env)

    passwords = json.loads((state / "passwords.json").read_text())
    assert set(passwords) == {"alice", "bob", "carol", "admin"}
    assert len(set(passwords.values())) == 4, "every user has their own password"
    assert all(len(p) >= 16 for p in passwords.values())
    assert stat.S_IMODE((state / "passwords.json").stat().st_mode) == 0o600
    assert not (state / "password").exists() and not (state / "admin-password").exists()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert f"lockstep demo hub is up: {url}/hub/login" in out
    for user, what in (("alice", "forecast, sandbox"), ("bob", "forecast"),
                       ("carol", "sandbox, vision"), ("admin", "admin, all projects")):
        assert f"{user:<8} password: {passwords[user]}  ({what})" in out
    assert "WARNING" not in out  # every project member is known to the hub
    assert "OFFLINE TEST CHANNEL" in out and "LOCKSTEP_DEMO_CHANNEL=" in out
    assert "file://" in (state / "lockstep_config.py").read_text()
    for project in PROJECTS:
        assert f"{project}: dev = 127.0.0.1:5000/lockstep/{project}@sha256:" in out
    assert "forecast: promoted: " in out or "forecast: unchanged: " in out
    assert ("a wrong password, another user's password (alice/bob) and an unlisted user "
            "are refused") in out
    assert "read /data/sales/sales.csv in a kernel: SALES 36 2023-01 2025-12" in out
    assert f"OK: demo hub at {url}: alice logged in, spawned forecast/qa" in out

    demo_id = (state / "demo-id").read_text().strip()
    assert not docker_api.containers(all=True,
                                     filters={"label": f"org.lockstep-demo.id={demo_id}"})
    for port in ("LOCKSTEP_DEMO_PORT", "LOCKSTEP_HUB_PORT", "LOCKSTEP_PROXY_API_PORT"):
        assert port_closed(demo_env[port]), f"{port} still answers after the check"
    assert not (state / "hub.pid").exists()
    registry_port = registry.rpartition(":")[2]
    assert not port_closed(registry_port), "the demo stopped a registry it did not start"

    again = run_check(demo_env)
    assert json.loads((state / "passwords.json").read_text()) == passwords
    assert "locking" not in again
    assert again.count("nothing to push: the registry already has this image") == len(PROJECTS)
    assert "forecast: unchanged: qa already points at" in again
    assert "OK: demo hub at" in again
    print(f"\nscripts/demo.sh --check: {', '.join(f'{k} {v:.0f}s' for k, v in TIMES.items())}")


@pytest.fixture
def hub_env(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCKSTEP_DEMO_STATE", str(tmp_path / "state"))
    return monkeypatch


def load_hub_config():
    return PyFileConfigLoader(HUB_CONFIG.name, path=str(HUB_CONFIG.parent)).load_config()


def test_example_hub_config_gives_each_user_their_own_password(hub_env, tmp_path):
    from spawner.project import list_projects

    config = load_hub_config()
    assert config.JupyterHub.authenticator_class == (
        "spawner.docker.demoauth.PrecreatedNativeAuthenticator")
    assert config.PrecreatedNativeAuthenticator.passwords_file == str(
        tmp_path / "state" / "passwords.json")
    assert config.PrecreatedNativeAuthenticator.enable_signup is False
    assert "SharedPasswordAuthenticator" not in config
    assert config.Authenticator.allowed_users == {"alice", "bob", "carol", "admin"}
    groups = set(config.JupyterHub.load_groups)
    for project in list_projects(REPO_ROOT / "environments"):
        assert set(project.members.groups) <= groups, project.name
        assert set(project.members.users) <= config.Authenticator.allowed_users, project.name
