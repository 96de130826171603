"""One site, one engine preparation: ``lockstep run``, ``lockstep deploy`` and the notebooks
gate use the runtime, firewall and host ports a site states once in
``c.LockstepDockerSpawner`` (the spawner's own traits), on a real dockerd and real iptables.

The site maps ``isolation: runc`` to ``lockstep-runc-alias``, a second name for runc that
``scripts/register-runtimes.sh`` registers with dockerd; containers created with it show
that name in ``HostConfig.Runtime``. Each command is given its own allowed host port, so
its line in ``iptables -S LOCKSTEP-INPUT`` shows that this command (re)wrote the chains.
"""

from __future__ import annotations

import json
import random
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import docker
import pytest

from spawner.docker.firewall import FORWARD_CHAIN, INPUT_CHAIN, bridge_name
from spawner.docker.prepare import firewall_lock
from spawner.launch.spec import ImageRef
from spawner.project import load_project
from spawner.promote import promote
from spawner.promote.notebooks import NotebookGateError, run_gate
from tests.docker.lockstep_site import REPO, ForecastSite, free_port, notebook_code

pytestmark = [pytest.mark.docker, pytest.mark.registry]
ALIAS = "lockstep-runc-alias"
GATE = {"org.lockstep.gate": "notebooks"}


def iptables(chain: str) -> list[str]:
    out = subprocess.run(["iptables", "-w", "5", "-S", chain], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, f"iptables -S {chain}: {out.stderr}"
    return out.stdout.splitlines()


def port_rules(port: int) -> list[str]:
    """The host-port allowances for ``port`` (one per lockstep gateway) in the input chain."""
    if not _chain_exists():
        return []
    return [r for r in iptables(INPUT_CHAIN)
            if f"--dport {port} " in r and "lockstep-host-port" in r and r.endswith("-j ACCEPT")]


def admits(port: int) -> bool:
    return bool(port_rules(port))


def unused_port() -> int:
    while True:
        port = random.randint(40000, 60000)
        if not admits(port):
            return port


def _chain_exists() -> bool:
    return subprocess.run(["iptables", "-w", "5", "-S", INPUT_CHAIN],
                          capture_output=True, timeout=30).returncode == 0


@pytest.fixture(scope="module")
def site(locked_project, built_image, registry, docker_client, tmp_path_factory):
    runtimes = docker_client.info().get("Runtimes") or {}
    assert ALIAS in runtimes, (f"dockerd has no {ALIAS!r} runtime (it has {sorted(runtimes)}); "
                               "run scripts/register-runtimes.sh as root")
    root = tmp_path_factory.mktemp("siteenv")
    lock = locked_project("forecast", ["python=3.11", "numpy"],
                          root=tmp_path_factory.mktemp("site-lock")) / "conda-lock.yml"
    site = ForecastSite(root=root, lock=lock, build=built_image(lock.parent), registry=registry,
                        tmp=tmp_path_factory.mktemp("site-site"))
    site.config.LockstepDockerSpawner.runtime_names = {"runc": ALIAS}
    site.ports = []
    site.push_build()
    site.to_prod()
    yield site
    # leave the host's chains as other hubs had them; under lockstep's lock, so a write by
    # another process (a hub, the other engine lane) cannot read a rule and put it back
    with firewall_lock():
        for port in site.ports:
            for rule in port_rules(port):
                subprocess.run(["iptables", "-w", "5", "-D", *shlex.split(rule)[1:]],
                               capture_output=True, timeout=30)
    site.cleanup(docker_client)


def allow_new_port(site) -> int:
    port = unused_port()
    site.ports.append(port)
    site.config.LockstepDockerSpawner.allowed_host_ports = [port]
    return port


def assert_behind_the_firewall(docker_client, site) -> None:
    """The project's bridge is a lockstep bridge (``lsbr+``), which the forward chain closes
    to traffic coming in through the host and the network keeps containers apart."""
    network = docker_client.networks.get(f"lockstep-{site.name}")
    options = network.attrs["Options"]
    assert options["com.docker.network.bridge.name"] == bridge_name(site.name)
    assert bridge_name(site.name).startswith("lsbr")
    assert options["com.docker.network.bridge.enable_icc"] == "false"
    assert f"-A {FORWARD_CHAIN} -o lsbr+ -j DROP" in iptables(FORWARD_CHAIN)
    assert f"-A DOCKER-USER -i lsbr+ -j {FORWARD_CHAIN}" in iptables("DOCKER-USER")
    assert f"-A INPUT -i lsbr+ -j {INPUT_CHAIN}" in iptables("INPUT")


def test_a_job_runs_on_the_sites_runtime_behind_the_firewall(site, docker_client, capfd):
    assert docker_client.networks.list(names=[f"lockstep-{site.name}"]) == []
    port = allow_new_port(site)
    proc = subprocess.Popen(
        [sys.executable, "-m", "spawner.cli", "--config", site.config_file(), "run", site.name,
         "--stage", "prod", "--", "python", "-c",
         "import time; print('started', flush=True); time.sleep(120)"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started", proc.stderr.read()
        (job,) = site.containers(docker_client, **{"org.lockstep.kind": "job"})
        host = job.attrs["HostConfig"]
        assert host["Runtime"] == ALIAS
        assert host["NetworkMode"] == f"lockstep-{site.name}"
        assert_behind_the_firewall(docker_client, site)
        assert admits(port)
        proc.terminate()
        proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert site.containers(docker_client, **{"org.lockstep.kind": "job"}) == []


def test_a_service_runs_on_the_sites_runtime_behind_the_firewall(site, docker_client, capfd):
    code = notebook_code(REPO / "notebooks" / "forecast" / "train.ipynb")
    assert site.lockstep("run", site.name, "--stage", "prod", "--", "python", "-c", code) == 0
    port = allow_new_port(site)
    service_port = free_port()
    try:
        assert site.lockstep("deploy", site.name, "--stage", "prod", "--port",
                             str(service_port), "--timeout", "40") == 0, capfd.readouterr().err
        host = docker_client.containers.get(f"lockstep-svc_{site.name}_0").attrs["HostConfig"]
        assert host["Runtime"] == ALIAS and host["NetworkMode"] == f"lockstep-{site.name}"
        assert admits(port)  # deploy wrote the chains
        assert_behind_the_firewall(docker_client, site)
    finally:
        assert site.lockstep("deploy", site.name, "--remove") == 0


def running_gates(docker_client, project: str) -> list[dict]:
    """``docker inspect`` of the project's gate containers (one may end while we look)."""
    found = []
    labels = [f"org.lockstep.project={project}", "org.lockstep.gate=notebooks"]
    for listed in docker_client.api.containers(filters={"label": labels}):
        try:
            found.append(docker_client.api.inspect_container(listed["Id"]))
        except docker.errors.NotFound:
            continue
    return found


def test_the_notebooks_gate_runs_on_the_sites_runtime_without_a_network(site, docker_client):
    gated = ForecastSite(root=Path(site.settings.environments_dir), build=site.build,
                         lock=Path(site.settings.environments_dir) / site.name / "conda-lock.yml",
                         registry=site.host, tmp=site.tmp)
    gated.config = site.config
    gated.push_build()
    folder = Path(site.settings.notebooks_dir) / gated.name
    folder.mkdir(parents=True)
    cell = {"cell_type": "code", "execution_count": None, "id": "a", "metadata": {},
            "outputs": [], "source": ["import time; time.sleep(6)"]}
    (folder / "slow.ipynb").write_text(json.dumps({
        "cells": [cell], "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                     "display_name": "Python 3"}},
        "nbformat": 4, "nbformat_minor": 5}))
    records = []
    worker = threading.Thread(target=lambda: records.append(
        promote(gated.settings, gated.name, "qa", user="alice")))
    worker.start()
    seen: list[dict] = []
    deadline = time.monotonic() + 120
    while worker.is_alive() and not seen and time.monotonic() < deadline:
        seen = running_gates(docker_client, gated.name)
        time.sleep(0.1)
    worker.join(timeout=300)
    assert records and records[0].outcome == "promoted", records and records[0].message
    assert seen, "the gate container was never seen running"
    assert seen[0]["HostConfig"]["Runtime"] == ALIAS
    assert seen[0]["HostConfig"]["NetworkMode"] == "none"  # offline: no bridge to guard
    assert gated.containers(docker_client, **GATE) == []  # removed after the run
    gated.cleanup(docker_client)


def test_a_runtime_the_engine_lacks_stops_run_deploy_and_the_gate_first(site, docker_client,
                                                                       capfd):
    saved = dict(site.config.LockstepDockerSpawner.runtime_names)
    site.config.LockstepDockerSpawner.runtime_names = {"runc": "lockstep-no-such-runtime"}
    try:
        assert site.lockstep("run", site.name, "--stage", "prod", "--", "true") == 2
        err = capfd.readouterr().err
        assert "needs the 'lockstep-no-such-runtime' runtime, but this Docker host only has" \
               in err and ALIAS in err
        assert site.lockstep("deploy", site.name, "--port", str(free_port())) == 2
        assert "'lockstep-no-such-runtime' runtime" in capfd.readouterr().err
        project = load_project(site.settings.project_dir(site.name))
        with pytest.raises(NotebookGateError, match="lockstep-no-such-runtime"):
            run_gate(site.settings, project, image=ImageRef(
                f"{site.settings.registry}/{site.name}@{site.digest('prod')}"),
                notebooks_dir=str(site.tmp), notebooks=["any.ipynb"])
    finally:
        site.config.LockstepDockerSpawner.runtime_names = saved
    assert site.containers(docker_client) == []
