"""Per-project Docker networks and the host firewall that keeps projects apart.

Each project gets its own bridge network ``lockstep-<project>`` whose Linux bridge has a
deterministic name (``lsbr-<10 hex of sha256(project)>``, within the 15-character limit),
so one interface wildcard (``lsbr+``) selects every lockstep bridge in iptables.

Why a firewall on top of Docker's own rules: Docker isolates *different* bridge networks
from each other (DOCKER-ISOLATION chains), and ``--internal`` cuts egress, but neither stops
a container from reaching services on the *host* through its bridge gateway: that traffic
goes through the INPUT chain. The hub listens on the host (it must: single-user servers
call the Hub API), so without rules a notebook could also reach the proxy's API, the
registry, or any other host port. The rules, applied atomically with
``iptables-restore --noflush``:

* ``INPUT -i lsbr+ -j LOCKSTEP-INPUT``: from a lockstep bridge to the host, only replies
  (ESTABLISHED/RELATED, e.g. the proxy talking to the server) and the allowed host ports
  (the Hub's port) are accepted, everything else is dropped;
* ``DOCKER-USER -i lsbr+ -j LOCKSTEP-FORWARD``: traffic inside one project's bridge is
  allowed (icc within a project), traffic from one lockstep bridge to another is dropped,
  anything else (egress, unless the network is internal) goes on to Docker's chains.

The Hub binds ``0.0.0.0:<hub port>`` (or the host address the admin picks) and each
server is told to call it at its own bridge's gateway (``Spawner.hub_connect_url``), so the
hub is reachable from every project network and from nothing else the firewall guards.

Several hubs on one host (a demo beside a test hub, say) share the chains: each sync keeps
the host ports already allowed and adds its own, so one hub never locks out another's
servers. ``remove_firewall`` clears them all.

The builders are pure; ``engine.ensure_network`` and ``sync_firewall`` do the I/O, and
``spawner.docker.prepare`` runs them for every container lockstep starts on a network
(servers, jobs, services), holding a host-wide lock so the bridge list and the rules written
from it are one step even when a hub and ``lockstep run``/``deploy`` sync at once.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections.abc import Iterable, Sequence

from spawner.errors import LockstepError
from spawner.labels import MANAGED, PROJECT

BRIDGE_PREFIX = "lsbr"
INPUT_CHAIN = "LOCKSTEP-INPUT"
FORWARD_CHAIN = "LOCKSTEP-FORWARD"
BRIDGE_OPTION = "com.docker.network.bridge.name"
NETWORK_LABELS = {MANAGED: "true"}


class FirewallError(LockstepError):
    """The host firewall rules could not be applied."""


def bridge_name(project: str) -> str:
    """The Linux bridge interface name for ``project``'s network (15 chars)."""
    return f"{BRIDGE_PREFIX}-{hashlib.sha256(project.encode()).hexdigest()[:10]}"


def network_create_kwargs(project: str, network: str, *, internal: bool) -> dict:
    """Keyword arguments for ``docker.APIClient.create_network`` of ``project``'s network."""
    return {
        "name": network,
        "driver": "bridge",
        "internal": internal,
        "check_duplicate": True,
        "options": {
            BRIDGE_OPTION: bridge_name(project),
            "com.docker.network.bridge.enable_icc": "true",
            "com.docker.network.bridge.enable_ip_masquerade": "true",
        },
        "labels": {**NETWORK_LABELS, PROJECT: project},
    }


def firewall_ruleset(*, bridges: Iterable[str], host_ports: Sequence[int]) -> str:
    """``iptables-restore --noflush`` input that (re)writes both lockstep chains."""
    lines = [
        "*filter",
        f":{INPUT_CHAIN} - [0:0]",
        f":{FORWARD_CHAIN} - [0:0]",
        f"-A {INPUT_CHAIN} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    ]
    for port in sorted(set(host_ports)):
        lines.append(f"-A {INPUT_CHAIN} -p tcp -m tcp --dport {int(port)} -j ACCEPT")
    lines.append(f"-A {INPUT_CHAIN} -j DROP")
    for bridge in sorted(set(bridges)):
        lines.append(f"-A {FORWARD_CHAIN} -i {bridge} -o {bridge} -j RETURN")
    lines += [
        f"-A {FORWARD_CHAIN} -i {BRIDGE_PREFIX}+ -o {BRIDGE_PREFIX}+ -j DROP",
        f"-A {FORWARD_CHAIN} -j RETURN",
        "COMMIT",
        "",
    ]
    return "\n".join(lines)


def jump_rules() -> list[list[str]]:
    """The two jumps into lockstep's chains (checked with -C, inserted first with -I)."""
    return [
        ["INPUT", "-i", f"{BRIDGE_PREFIX}+", "-j", INPUT_CHAIN],
        ["DOCKER-USER", "-i", f"{BRIDGE_PREFIX}+", "-j", FORWARD_CHAIN],
    ]


def _iptables(args: list[str], *, stdin: str | None = None, binary: str = "iptables"):
    return subprocess.run([binary, "-w", "5", *args] if binary == "iptables" else [binary, *args],
                          input=stdin, capture_output=True, text=True, timeout=30)


def allowed_ports(rules: str) -> set[int]:
    """The host ports ``iptables -S LOCKSTEP-INPUT`` output accepts (pure)."""
    pattern = re.compile(rf"^-A {INPUT_CHAIN} -p tcp -m tcp --dport (\d+) -j ACCEPT$")
    return {int(m.group(1)) for line in rules.splitlines() if (m := pattern.match(line.strip()))}


def sync_firewall(*, bridges: Iterable[str], host_ports: Sequence[int]) -> None:
    """Write lockstep's chains (keeping ports other hubs allowed) and make sure INPUT /
    DOCKER-USER jump to them."""
    fix = ("the hub needs root or CAP_NET_ADMIN and iptables; or, if the host firewall is "
           "managed elsewhere, set c.LockstepDockerSpawner.firewall = False")
    try:
        current = _iptables(["-S", INPUT_CHAIN])
        ports = set(host_ports) | (allowed_ports(current.stdout) if current.returncode == 0
                                   else set())
        done = _iptables(["--noflush", "-w", "5"], binary="iptables-restore",
                         stdin=firewall_ruleset(bridges=bridges, host_ports=sorted(ports)))
        if done.returncode != 0:
            raise FirewallError(f"iptables-restore failed: {done.stderr.strip()}; {fix}")
        for rule in jump_rules():
            if _iptables(["-C", *rule]).returncode != 0:
                added = _iptables(["-I", rule[0], "1", *rule[1:]])
                if added.returncode != 0:
                    raise FirewallError(
                        f"cannot add 'iptables -I {' '.join(rule)}': {added.stderr.strip()}; {fix}"
                    )
    except FileNotFoundError as exc:
        raise FirewallError(f"{exc.filename} is not installed; {fix}") from exc


def remove_firewall() -> None:
    """Remove the jumps and chains (for tests and uninstall); missing pieces are ignored."""
    for rule in jump_rules():
        while _iptables(["-C", *rule]).returncode == 0:
            _iptables(["-D", *rule])
    for chain in (INPUT_CHAIN, FORWARD_CHAIN):
        _iptables(["-F", chain])
        _iptables(["-X", chain])


def gateway_of(network: dict) -> str:
    """The bridge gateway address of an inspected network ('' when it has none)."""
    for config in (network.get("IPAM") or {}).get("Config") or ():
        if config.get("Gateway"):
            return str(config["Gateway"])
    return ""
