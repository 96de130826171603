"""End to end: JupyterHub + CHP + Docker + LockstepDockerSpawner, driven by the REST API.

Tests run in file order against one hub (module scope); each states what it proves.
"""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from spawner import sessions
from spawner.docker.cis import CHECKS
from spawner.launch.state import from_state
from tests.e2e.hubtools import REPO_ROOT, RUN_ID, TOKEN, run_code
from tests.support.engine import missing

pytestmark = pytest.mark.e2e

PROBE = r"""
import errno, os
print("DATA", open('/data/shared/hello.txt').read().strip())
try:
    open('/data/shared/new.txt', 'w')
except OSError as e:
    print("WRITE_DATA", errno.errorcode[e.errno])
status = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)
print("UID", os.getuid(), "CAPEFF", status['CapEff'].strip())
try:
    open('/etc/evil', 'w')
except OSError as e:
    print("WRITE_ROOT", errno.errorcode[e.errno])
open('/workspace/shared.txt', 'w').write('ws')
open(os.path.expanduser('~/home.txt'), 'w').write('home')
print("WRITES_OK")
"""

SPAWN_TIMES: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def report_spawn_times(request):
    """Print the spawn durations the tests measured (REST POST -> ready), after the module:
    figures for the report, asserted nowhere (a duration proves nothing on a shared host)."""
    yield
    if SPAWN_TIMES:
        terminal = request.config.pluginmanager.get_plugin("terminalreporter")
        lines = [f"  {label}: {seconds:.2f}s" for label, seconds in SPAWN_TIMES.items()]
        (terminal.write_line if terminal else print)(
            "\nspawn times (REST POST -> ready):\n" + "\n".join(lines))


def container(docker_api, user: str, name: str = "") -> dict:
    cname = f"lockstep-{user}" + (f"--{name}" if name else "")
    return docker_api.inspect_container(cname)


def test_spawn_runs_code_reads_data_hardened(hub, docker_api):
    response, took, events = hub.spawn_with_progress(
        "alice", {"project": "e2e-alpha", "stage": "dev"})
    assert response.status_code in (201, 202), response.text
    SPAWN_TIMES["first (pull + volumes)"] = took
    messages = [e.get("message", "") for e in events]
    assert any(m.startswith("e2e-alpha at dev: ") and "@sha256:" in m for m in messages)
    assert any(m.startswith("Pulling ") for m in messages), messages  # pull shown on the page
    assert any(m.startswith("Created volume lockstep-ws-e2e-alpha") for m in messages)
    assert events[-1].get("ready") is True, events[-3:]
    progress = [e["progress"] for e in events if "progress" in e]
    assert progress == sorted(progress), progress
    out = run_code(hub, "alice", PROBE)
    assert out["error"] is None, out
    assert "DATA hello from shared data" in out["stdout"]
    assert "WRITE_DATA EROFS" in out["stdout"]
    assert "UID 1000 CAPEFF 0000000000000000" in out["stdout"]
    assert "WRITE_ROOT EROFS" in out["stdout"]
    assert "WRITES_OK" in out["stdout"]
    info = container(docker_api, "alice")
    host = info["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and host["Privileged"] is False
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["ReadonlyRootfs"] is True and host["PidsLimit"] == 256
    assert host["NetworkMode"] == "lockstep-e2e-alpha"
    assert "@sha256:" in info["Config"]["Image"]
    assert not any("docker.sock" in (m.get("Source") or "") for m in info["Mounts"])


def test_warm_respawn_pulls_nothing_and_creates_no_volume(hub, docker_api):
    """A respawn where the image and the volumes are on the host already: its progress (the
    lines the spawn page shows, read from the hub log) names the same image by digest and
    shows no pull and no volume creation; the new container runs that very image and finds
    the old volumes' files. How long it took is reported, not asserted."""
    first = container(docker_api, "alice")
    hub.stop_server("alice")
    since = hub.log_size()
    response, took = hub.spawn("alice", {"project": "e2e-alpha", "stage": "dev"})
    assert response.status_code in (201, 202), response.text
    SPAWN_TIMES["warm (image and volumes present)"] = took
    lines = hub.progress_logged(since)
    assert f"e2e-alpha at dev: {first['Config']['Image']}" in lines, lines  # same digest
    assert not [m for m in lines if m.startswith("Pulling ") or m == "Image pulled"], lines
    assert not [m for m in lines if m.startswith("Created volume")], lines
    assert any(m.startswith("Server up ") for m in lines), lines
    again = container(docker_api, "alice")
    assert again["Id"] != first["Id"] and again["Image"] == first["Image"]  # same local image
    out = run_code(hub, "alice", "print(open('/workspace/shared.txt').read(), "
                                 "open('/home/jovyan/home.txt').read())")
    assert out["stdout"].split() == ["ws", "home"], out  # volumes survived the restart


def test_non_member_gets_the_404_of_a_missing_project_and_nothing_starts(hub, docker_api):
    response = hub.api("POST", "/users/carol/server", {"project": "e2e-alpha", "stage": "dev"})
    assert response.status_code == 404, response.text
    hidden = response.json()["message"]
    assert "No project you may launch is called 'e2e-alpha'" in hidden and "alice" not in hidden
    missing = hub.api("POST", "/users/carol/server", {"project": "e2e-nope", "stage": "dev"})
    assert missing.status_code == 404  # the same answer: the name's existence is not told
    assert missing.json()["message"] == hidden.replace("'e2e-alpha'", "'e2e-nope'")
    assert not docker_api.containers(all=True, filters={"name": "lockstep-carol"})


def test_member_by_group_may_start(hub):
    response, took = hub.spawn("bob", {"project": "e2e-alpha", "stage": "dev"})
    assert response.status_code in (201, 202), response.text
    out = run_code(hub, "bob", "print(open('/workspace/shared.txt').read())")
    assert out["stdout"].strip() == "ws"  # the project workspace is shared by members


def test_projects_cannot_reach_each_other_or_host(hub, docker_api):
    response, _ = hub.spawn("carol", {"project": "e2e-beta", "stage": "dev"})
    assert response.status_code in (201, 202), response.text
    alpha = container(docker_api, "alice")["NetworkSettings"]["Networks"]["lockstep-e2e-alpha"]
    beta = container(docker_api, "carol")["NetworkSettings"]["Networks"]["lockstep-e2e-beta"]
    # a dropped connection waits out its 2 s: the probes run side by side, not one by one
    prelude = """
import socket
from concurrent.futures import ThreadPoolExecutor
def probe(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close(); return "open"
    except OSError as e:
        return type(e).__name__
def probe_all(targets):
    with ThreadPoolExecutor(len(targets)) as pool:
        found = pool.map(lambda target: probe(*target), targets.values())
    for name, outcome in zip(targets, found):
        print(name, outcome)
"""
    code = prelude + f"""
probe_all({{"PEER": ({alpha['IPAddress']!r}, 8888),
           "HUB": ({beta['Gateway']!r}, {hub.hub_port}),
           "PROXY": ({beta['Gateway']!r}, {hub.public_port}),
           "PROXYAPI": ({beta['Gateway']!r}, {hub.api_port})}})
"""
    out = run_code(hub, "carol", code)
    lines = dict(line.split(" ", 1) for line in out["stdout"].splitlines())
    assert lines["PEER"] != "open", out
    assert lines["HUB"] == "open", out
    assert lines["PROXY"] != "open" and lines["PROXYAPI"] != "open", out
    # within a project, members' servers share the bridge but cannot reach each other
    # (icc off and lockstep's DOCKER-USER rules; issue 11): only the hub and proxy reach them
    bob = container(docker_api, "bob")["NetworkSettings"]["Networks"]["lockstep-e2e-alpha"]
    assert bob["NetworkID"] == alpha["NetworkID"]
    mate = run_code(hub, "alice", prelude + f"print('MATE', probe({bob['IPAddress']!r}, 8888))\n")
    assert "MATE " in mate["stdout"] and "MATE open" not in mate["stdout"], mate


def test_gpu_project_fails_before_creating_anything(hub, docker_api):
    info = docker_api.info()
    if "nvidia" in (info.get("Runtimes") or {}) or info.get("CDISpecDirs"):
        pytest.skip("this host can give GPUs")
    response = hub.api("POST", "/users/carol/servers/gpu", {"project": "e2e-vision"})
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert "cannot give containers GPUs" in message
    assert "NVIDIA Container Toolkit" in message and "nvidia-ctk cdi generate" in message
    assert not docker_api.containers(all=True, filters={"name": "lockstep-carol--gpu"})
    assert not docker_api.networks(names=["lockstep-e2e-vision"])


def test_gvisor_project_runs_under_runsc(hub, docker_api):
    if "runsc" not in (docker_api.info().get("Runtimes") or {}):
        missing("runsc is not registered with dockerd (run scripts/register-runtimes.sh)")
    response, took = hub.spawn("alice", {"project": "e2e-sandbox", "stage": "dev"}, name="sb")
    assert response.status_code in (201, 202), response.text
    SPAWN_TIMES["gVisor"] = took
    assert container(docker_api, "alice", "sb")["HostConfig"]["Runtime"] == "runsc"
    out = run_code(hub, "alice", "print(open('/proc/version').read())", name="sb")
    assert "Linux version 4.4.0" in out["stdout"], out  # gVisor's synthetic kernel
    hub.stop_server("alice", "sb")


def test_sessions_recorded_and_respawnable(hub, docker_api):
    cli = [sys.executable, "-m", "spawner.cli", "--config",
           str(hub.root / "jupyterhub_config.py"), "sessions", "--json", "--user", "alice"]
    # the hub config also sets c.Lockstep.data_dir, so the CLI reads the same log
    done = subprocess.run(cli, capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    alpha = [r for r in rows if r["project"] == "e2e-alpha"]
    assert len(alpha) >= 2 and alpha[0]["stop"] and not alpha[-1]["stop"]
    assert alpha[-1]["digest"].startswith("sha256:") and alpha[-1]["container_id"]
    hub.stop_server("alice")
    response, _ = hub.spawn("alice", {"session": alpha[0]["id"]})
    assert response.status_code in (201, 202), response.text
    assert container(docker_api, "alice")["Config"]["Labels"]["org.lockstep.digest"] == \
        alpha[0]["digest"]


def test_three_servers_survive_hub_restart(hub, docker_api):
    before = {u: container(docker_api, u)["Id"] for u in ("alice", "bob", "carol")}
    launches = {u: from_state(hub.server(u)["state"]) for u in before}
    hub.restart()
    for user, cid in before.items():
        info = container(docker_api, user)
        assert info["Id"] == cid and info["State"]["Running"], user
        server = hub.server(user)
        assert server and server["ready"], user
        launch = from_state(server["state"])  # LaunchState: the digest is in the image
        assert launch == launches[user] and launch.digest.startswith("sha256:"), user
        assert info["Config"]["Labels"]["org.lockstep.digest"] == launch.digest, user
        reply = httpx.get(f"{hub.server_url(user)}api/status", timeout=30,
                          headers={"Authorization": f"token {TOKEN}"})
        assert reply.status_code == 200, (user, reply.text)
    hub.stop_server("bob")
    assert not docker_api.containers(all=True, filters={"name": "lockstep-bob"})
    # the restarted hub closed the session the first hub opened (read from the state)
    log = sessions.read_sessions(hub.root / "state" / sessions.FILENAME, user="bob")
    closed = [s for s in log if s.id == launches["bob"].session]
    assert closed and closed[0].stop and closed[0].digest == launches["bob"].digest, log


def test_idle_culler_runs_as_service(hub):
    services = hub.api("GET", "/services").json()
    assert "idle-culler" in services
    assert any("--timeout=3600" in part for part in services["idle-culler"]["command"])


def test_every_lockstep_container_passes_the_cis_audit(hub, docker_api):
    """Last: `lockstep audit` over this hub's containers (CIS Docker Benchmark section 5)."""
    # alice's and carol's servers still run; bring back bob's and the gVisor one (stopped
    # by the tests above) so the audit sees at least 3 servers, one of them under runsc
    response, _ = hub.spawn("bob", {"project": "e2e-alpha", "stage": "dev"})
    assert response.status_code in (201, 202), response.text
    gvisor = "runsc" in (docker_api.info().get("Runtimes") or {})
    if gvisor:
        response, _ = hub.spawn("alice", {"project": "e2e-sandbox", "stage": "dev"}, name="sb")
        assert response.status_code in (201, 202), response.text
    cli = [sys.executable, "-m", "spawner.cli", "--config",
           str(hub.root / "jupyterhub_config.py"), "audit", "--json",
           "--label", f"org.lockstep-e2e.run={RUN_ID}"]  # this hub's containers only
    done = subprocess.run(cli, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    report = json.loads(done.stdout)
    runtimes = {c["name"]: c["runtime"] for c in report["containers"]}
    assert {"lockstep-alice", "lockstep-bob", "lockstep-carol"} <= set(runtimes), runtimes
    assert len(runtimes) >= 3
    if gvisor:
        assert runtimes["lockstep-alice--sb"] == "runsc"
    # n/a only where this host cannot give it: no AppArmor, a daemon without userns-remap,
    # Docker local volumes (no size limit); every other check passes on every container
    host_bound = {"userns-remap", "volume-size"} | (set() if report["host"]["apparmor"]
                                                    else {"apparmor"})
    not_passed = [r for r in report["results"] if r["status"] != "pass"]
    assert all(r["status"] == "n/a" and r["check"] in host_bound for r in not_passed), \
        [(r["check"], r["status"], r["detail"]) for r in not_passed]
    assert len(report["results"]) == len(CHECKS) * len(runtimes)
    assert report["failed"] == 0 and done.returncode == 0, done.stderr
