"""The Docker firewall's parity with the chart's NetworkPolicies, on real iptables, a real
engine and real containers (issue 11, finding 6).

From a ``lockstep run`` job and from a ``lockstep deploy``ed service (both made ready by
``spawner.docker.prepare``), connections to a link-local alias of the host, a private
address of the host, the Hub's port on those addresses, a link-local and a private address
beyond the host (a namespace behind a veth pair), a teammate's container on the same
project bridge, and IPv6 addresses (a ULA of the host, the bridge's link-local) all fail;
the Hub's port on the bridge gateway and on the hub address (``hubnet.hub_address()``, where
a demo hub binds its API) and the site's ``allowed_egress`` still answer. Every
listener is the test's own, and each is first shown to answer from the host, so a refusal
is the firewall's doing.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest

from spawner.docker.hubnet import hub_address
from spawner.launch.stages import resolve_stage
from tests.docker.lockstep_site import REPO, ForecastSite, free_port, notebook_code
from tests.docker.nettargets import PROBE, Listener, Targets, parse_probe
from tests.support.engine import TEST_LABELS

pytestmark = [pytest.mark.docker, pytest.mark.registry]
TEAMMATE_PORT = 8888
MUST_ANSWER = {"hub-on-gateway", "hub-address", "allowed-egress"}
SVC = {"org.lockstep.kind": "service"}


def _wait_open(host: str, port: int, scope: str = "", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    address = (host, port, 0, socket.if_nametoindex(scope)) if scope else (host, port)
    while True:
        try:
            with socket.socket(family) as sock:
                sock.settimeout(2)
                sock.connect(address)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.fixture(scope="module")
def site(locked_project, built_image, registry, docker_client, tmp_path_factory):
    root = tmp_path_factory.mktemp("fw-envs")
    lock = locked_project("forecast", ["python=3.11", "numpy"],
                          root=tmp_path_factory.mktemp("fw-lock")) / "conda-lock.yml"
    site = ForecastSite(root=root, lock=lock, build=built_image(lock.parent), registry=registry,
                        tmp=tmp_path_factory.mktemp("fw-site"))
    site.port, hub_port = free_port(), free_port()
    allowed, blocked = free_port(), free_port()
    site.config.LockstepDockerSpawner.allowed_host_ports = [hub_port]
    site.config.LockstepDockerSpawner.allowed_egress = [f"10.213.1.2/32:{allowed}"]
    targets = Targets(hub_port=hub_port, allowed_port=allowed, blocked_port=blocked)
    hub_net = f"lockstep--fwhub-{site.name}"
    try:
        # where a demo hub binds its API (hubnet.hub_address): an empty lockstep bridge
        hub_ip = hub_address(hub_net, client=docker_client.api)
        site.push_build()
        site.to_prod()
        code = notebook_code(REPO / "notebooks" / "forecast" / "train.ipynb")
        # the first job makes the project's network (through prepare) and trains the model
        assert site.lockstep("run", site.name, "--stage", "prod", "--", "python", "-c",
                             code) == 0
        network = docker_client.networks.get(f"lockstep-{site.name}").attrs
        gateway = network["IPAM"]["Config"][0]["Gateway"]
        bridge = network["Options"]["com.docker.network.bridge.name"]
        link_local = targets.on_bridge(gateway, bridge)
        targets.listeners.append(Listener(hub_ip, hub_port))
        image = resolve_stage(site.settings, site.name, "prod").reference
        mate = docker_client.containers.run(
            image, ["python", "-m", "http.server", str(TEAMMATE_PORT)], detach=True,
            network=network["Name"], user="1000:1000", name=f"lockstep-fw-mate-{site.name}",
            labels={**TEST_LABELS, "org.lockstep.project": site.name})
        mate.reload()
        mate_ip = mate.attrs["NetworkSettings"]["Networks"][network["Name"]]["IPAddress"]
        site.probes = {
            "hub-on-gateway": [gateway, hub_port],
            "hub-address": [hub_ip, hub_port],
            "allowed-egress": ["10.213.1.2", allowed],
            "link-local-host": ["169.254.77.1", hub_port],
            "private-host": ["10.213.0.1", hub_port],  # also: the Hub's port off the bridge
            "link-local-beyond": ["169.254.77.9", allowed],
            "private-beyond": ["10.213.1.2", blocked],
            "teammate": [mate_ip, TEAMMATE_PORT],
            "ipv6-host-ula": ["fd00:213::1", hub_port],
        }
        if link_local:
            site.probes["ipv6-bridge-link-local"] = [link_local, hub_port, "eth0"]
        site.bridge, site.link_local = bridge, link_local
        for name, target in site.probes.items():  # every listener answers the host itself
            try:
                _wait_open(*(target[:2] + [bridge] if name.startswith("ipv6-bridge")
                             else target), timeout=60)
            except OSError as exc:
                mate.reload()
                raise AssertionError(f"{name} {target} does not answer the host ({exc}); "
                                     f"teammate {mate.status}: {mate.logs(tail=20)!r}") from exc
        yield site
    finally:
        for container in site.containers(docker_client, **SVC):  # shown on failure only
            print(container.name, container.logs(tail=20).decode(errors="replace"))
        site.cleanup(docker_client)
        for network in docker_client.networks.list(names=[hub_net]):
            network.remove()
        targets.close()


def _check(results: dict, probes: dict) -> None:
    assert results.pop("ipv6-on-eth0") == "off", results  # no IPv6 on lockstep networks
    assert set(results) == set(probes), results
    for name, outcome in results.items():
        if name in MUST_ANSWER:
            assert outcome == "open", (name, probes[name], results)
        else:
            assert outcome != "open", (name, probes[name], results)


def test_a_job_reaches_the_hub_and_allowed_egress_only(site, capfd):
    capfd.readouterr()
    code = site.lockstep("run", site.name, "--stage", "prod", "--", "python", "-c", PROBE,
                         json.dumps(site.probes))
    out = capfd.readouterr().out
    assert code == 0, out
    _check(parse_probe(out), site.probes)


def test_a_deployed_service_is_published_but_reaches_the_same_only(site, docker_client, capfd):
    assert site.lockstep("deploy", site.name, "--stage", "prod", "--port", str(site.port),
                         "--timeout", "60") == 0
    with urllib.request.urlopen(f"http://127.0.0.1:{site.port}/health", timeout=5) as reply:
        assert reply.status == 200  # still reachable on its published port from the host
    (service,) = site.containers(docker_client, **SVC)
    done = service.exec_run(["python", "-c", PROBE, json.dumps(site.probes)])
    assert done.exit_code == 0, done.output
    _check(parse_probe(done.output.decode()), site.probes)
    assert site.lockstep("deploy", site.name, "--remove") in (0, 2)


def test_network_and_rules_are_as_audited(site, docker_client):
    """icc off and no IPv6 on the project network; both families' chains installed."""
    from tests.docker.nettargets import sh

    network = docker_client.networks.get(f"lockstep-{site.name}").attrs
    assert network["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert not network["EnableIPv6"]
    assert "-j LOCKSTEP-INPUT" in sh("iptables", "-S", "INPUT").stdout
    assert "-j LOCKSTEP-FORWARD" in sh("iptables", "-S", "DOCKER-USER").stdout
    six = sh("ip6tables", "-S", "FORWARD").stdout
    assert "-i lsbr+ -j LOCKSTEP-FORWARD" in six and "-o lsbr+ -j LOCKSTEP-FORWARD" in six
