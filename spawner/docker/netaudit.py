"""Network checks of ``lockstep audit``: the project networks and the host firewall, pure.

``audit_networks(networks, host)`` takes the lockstep networks (``docker network ls``
entries, label ``org.lockstep.managed``) and a ``FirewallFacts`` snapshot of the host (the
``iptables -S`` / ``ip6tables -S`` output lockstep's rules live in, whether the host has
IPv6, ``bridge-nf-call-iptables``) and returns ``cis.Result`` rows, like the container
checks, so one table and one exit status carry both. The checks:

====== ================== ===========================================================
2.1    icc                per network: ``enable_icc=false`` (CIS Docker Benchmark 2.1,
                          "restrict network traffic between containers on the default
                          bridge", applied to every lockstep bridge)
(none) ipv6-off           per network: ``EnableIPv6`` false (CIS has no such check)
(none) firewall-chains    host: ``INPUT``/``DOCKER-USER`` jump to ``LOCKSTEP-INPUT``/
                          ``LOCKSTEP-FORWARD``, which end in DROP and block 169.254/16
                          and the private ranges (no CIS id)
(none) ipv6-filtered      host: ip6tables ``INPUT``/``FORWARD`` drop IPv6 on ``lsbr+``
                          (n/a when the host has no IPv6; no CIS id)
(none) bridge-netfilter   host: ``net.bridge.bridge-nf-call-iptables = 1``, without which
                          iptables never sees traffic between containers of one bridge
                          (no CIS id)
====== ================== ===========================================================

Rows without a CIS id carry ``cis = "-"``. With ``firewall = False`` the host checks are
``n/a`` (the site says another firewall does the job). No I/O here: ``spawner.docker
.firewall.facts()`` reads the host, ``spawner.commands.audit`` the engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from spawner.docker.cisbase import FAIL, NA, PASS, Result, Verdict
from spawner.docker.egress import BLOCKED
from spawner.docker.firewall import (
    BRIDGE_OPTION,
    FORWARD_CHAIN,
    ICC_OPTION,
    INPUT_CHAIN,
    jump6_rules,
    jump_rules,
)
from spawner.labels import PROJECT

NO_CIS = "-"
FIX_NETWORK = ("stop its containers; lockstep recreates the network on the next start (or "
               "`docker network rm {name}`)")


@dataclass(frozen=True)
class FirewallFacts:
    """The host's firewall as ``iptables -S`` prints it ('' = could not be read)."""

    enabled: bool = True  # c.LockstepDockerSpawner.firewall
    rules4: str = ""  # iptables -S (all chains of the filter table)
    rules6: str = ""  # ip6tables -S
    has_ipv6: bool = True
    bridge_nf: str = ""  # /proc/sys/net/bridge/bridge-nf-call-iptables ('' = absent)
    error: str = ""  # why the rules could not be read


def _has(rules: str, rule: list[str]) -> bool:
    return f"-A {' '.join(rule)}" in rules.splitlines()


def check_icc(network: Mapping[str, Any]) -> Verdict:
    value = (network.get("Options") or {}).get(ICC_OPTION)
    if value == "false":
        return PASS, ""
    return FAIL, (f"{ICC_OPTION} is {value or 'unset (true)'}: containers on it reach each "
                  "other; " + FIX_NETWORK.format(name=network.get("Name", "")))


def check_ipv6_off(network: Mapping[str, Any]) -> Verdict:
    if not network.get("EnableIPv6"):
        return PASS, ""
    return FAIL, "IPv6 is enabled on it; " + FIX_NETWORK.format(name=network.get("Name", ""))


def check_chains(host: FirewallFacts) -> Verdict:
    rules = host.rules4
    missing = [" ".join(j) for j in jump_rules() if not _has(rules, j)]
    missing += [f"{chain} ending in DROP" for chain in (INPUT_CHAIN,)
                if not _has(rules, [chain, "-j", "DROP"])]
    missing += [f"{FORWARD_CHAIN} dropping {net}" for net in BLOCKED
                if not _has(rules, [FORWARD_CHAIN, "-d", str(net), "-j", "DROP"])]
    if not _has(rules, [FORWARD_CHAIN, "-o", "lsbr+", "-j", "DROP"]):
        missing.append(f"{FORWARD_CHAIN} dropping traffic into lockstep bridges")
    if not missing:
        return PASS, ""
    return FAIL, ("missing: " + "; ".join(missing) + ". Start a server, job or service "
                  "(lockstep writes the rules before each), or run as root")


def check_ipv6_filtered(host: FirewallFacts) -> Verdict:
    if not host.has_ipv6:
        return NA, "the host has no IPv6"
    missing = [" ".join(j) for j in jump6_rules() if not _has(host.rules6, j)]
    missing += [f"{c} ending in DROP" for c in (INPUT_CHAIN, FORWARD_CHAIN)
                if not _has(host.rules6, [c, "-j", "DROP"])]
    if not missing:
        return PASS, ""
    return FAIL, "ip6tables is missing: " + "; ".join(missing)


def check_bridge_netfilter(host: FirewallFacts) -> Verdict:
    if host.bridge_nf == "1":
        return PASS, ""
    return FAIL, (f"net.bridge.bridge-nf-call-iptables is {host.bridge_nf or 'absent'}: "
                  "traffic between containers of one bridge bypasses iptables; "
                  "`modprobe br_netfilter && sysctl -w net.bridge.bridge-nf-call-iptables=1`")


HOST_CHECKS = (("firewall-chains", check_chains), ("ipv6-filtered", check_ipv6_filtered),
               ("bridge-netfilter", check_bridge_netfilter))


def _row(name: str, network_id: str, project: str, kind: str, cis: str, check: str,
         verdict: Verdict) -> Result:
    return Result(container=name, id=network_id, project=project, kind=kind, cis=cis,
                  check=check, status=verdict[0], detail=verdict[1])


def audit_networks(networks: Iterable[Mapping[str, Any]], host: FirewallFacts) -> list[Result]:
    """Rows for each lockstep network (by name), then for the host's firewall."""
    rows = []
    for net in sorted(networks, key=lambda n: str(n.get("Name", ""))):
        if not (net.get("Options") or {}).get(BRIDGE_OPTION):
            continue
        base = (str(net.get("Name", "")), str(net.get("Id", ""))[:12],
                (net.get("Labels") or {}).get(PROJECT, ""), "network")
        rows.append(_row(*base, "2.1", "icc", check_icc(net)))
        rows.append(_row(*base, NO_CIS, "ipv6-off", check_ipv6_off(net)))
    for check, judge in HOST_CHECKS:
        if not host.enabled:
            verdict: Verdict = (NA, "c.LockstepDockerSpawner.firewall = False: the site's "
                                    "own firewall must do this")
        elif host.error and check != "bridge-netfilter":
            verdict = (FAIL, f"cannot read the firewall: {host.error}")
        else:
            verdict = judge(host)
        rows.append(_row("host", "", "", "host", NO_CIS, check, verdict))
    return rows
