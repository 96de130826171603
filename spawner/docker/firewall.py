"""Per-project Docker networks and the host firewall around every lockstep container.

Each project gets its own bridge network ``lockstep-<project>`` whose Linux bridge has a
deterministic name (``lsbr-<10 hex of sha256(project)>``, within the 15-character limit),
so one interface wildcard (``lsbr+``) selects every lockstep bridge in iptables. Networks
are created with ``enable_icc=false`` (Docker drops container-to-container traffic on the
bridge) and without IPv6.

The rules are the Docker twin of the chart's NetworkPolicies (a server reaches the hub API
and DNS, no other server of its project or another, no host port, no private or link-local
range unless the site allows it), written atomically with ``iptables-restore --noflush``:

* ``INPUT -i lsbr+ -j LOCKSTEP-INPUT`` (to the host itself, whatever address): replies
  (ESTABLISHED/RELATED, e.g. the proxy talking to a server), the allowed host ports (the
  Hub's) on a lockstep bridge's *gateway* address only (so not on the host's other
  addresses: eth0, a VPN, a dummy interface), and ``allowed_egress`` destinations; the
  rest is dropped;
* ``DOCKER-USER -i lsbr+ -j LOCKSTEP-FORWARD`` (through the host): replies go on to Docker's
  chains; anything into a lockstep bridge is dropped (a teammate's server on the same
  bridge, needs ``br_netfilter``, which Docker loads; or another project); DNS to the host's
  nameservers and ``allowed_egress`` go on; 10/8, 100.64/10, 169.254/16, 172.16/12 and
  192.168/16 are dropped; anything else (the internet, unless the network is ``--internal``)
  is left to Docker;
* IPv6, blocked twice: lockstep networks are created with ``enable_ipv6=False``, and on such
  a network Docker turns IPv6 off on the container's interface (``disable_ipv6=1`` on
  ``eth0``, seen on Docker 20.10; the container cannot turn it back on without
  ``NET_ADMIN``); and ``ip6tables`` ``INPUT -i lsbr+`` and ``FORWARD -i/-o lsbr+`` jump to
  chains that drop everything, for whatever an engine or runtime still lets through (the
  bridge's own ``fe80::`` address, link-local traffic between containers). No sysctl is
  set in the container body: runtimes such as gVisor handle them differently, and the
  filter covers every runtime alike. A host without IPv6 needs no ip6tables rules.

Why rules on top of Docker's: Docker isolates *different* bridge networks from each other
and ``--internal`` cuts egress, but neither stops a container from reaching services on
the *host* through its bridge (the INPUT chain), from reaching private ranges beyond it, or
from using IPv6 link-local addresses.

Several hubs and CLI runs on one host share the chains: each sync keeps the host ports and
allowed destinations already written (read back from the comments lockstep tags them
with) and adds its own, so one never locks out another's servers; ``remove_firewall``
clears them all.

The builders are pure; ``sync_firewall`` does the I/O, and ``spawner.docker.prepare`` runs
it for every container lockstep starts on a network (servers, jobs, services, gates),
holding a host-wide lock so the bridge list and the rules written from it are one step.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from spawner.docker.egress import BLOCKED, Egress, nameservers, parse_egress
from spawner.errors import LockstepError
from spawner.labels import MANAGED, PROJECT

BRIDGE_PREFIX = "lsbr"
INPUT_CHAIN = "LOCKSTEP-INPUT"
FORWARD_CHAIN = "LOCKSTEP-FORWARD"
BRIDGE_OPTION = "com.docker.network.bridge.name"
ICC_OPTION = "com.docker.network.bridge.enable_icc"
NETWORK_LABELS = {MANAGED: "true"}
PORT_TAG = "lockstep-host-port"
EGRESS_TAG = "lockstep-egress"
FIX = ("the hub needs root or CAP_NET_ADMIN and iptables/ip6tables; or, if the host firewall "
       "is managed elsewhere, set c.LockstepDockerSpawner.firewall = False")


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
        "enable_ipv6": False,
        "options": {
            BRIDGE_OPTION: bridge_name(project),
            ICC_OPTION: "false",
            "com.docker.network.bridge.enable_ip_masquerade": "true",
        },
        "labels": {**NETWORK_LABELS, PROJECT: project},
    }


def _tag(tag: str) -> list[str]:
    return ["-m", "comment", "--comment", tag]


def firewall_ruleset(*, gateways: Iterable[str], host_ports: Sequence[int],
                     egress: Iterable[Egress] = (), dns: Iterable[str] = ()) -> str:
    """``iptables-restore --noflush`` input that (re)writes both IPv4 lockstep chains.

    ``gateways``: the gateway address of every lockstep bridge; ``host_ports``: TCP ports
    of the host served there (the Hub's); ``egress``: the site's allowed destinations;
    ``dns``: the host's nameservers (port 53, UDP and TCP)."""
    allowed = sorted(set(egress))
    rules = [[INPUT_CHAIN, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"]]
    for gateway in sorted(set(filter(None, gateways))):
        for port in sorted({int(p) for p in host_ports}):
            rules.append([INPUT_CHAIN, "-d", f"{gateway}/32", "-p", "tcp", "-m", "tcp",
                          "--dport", str(port), *_tag(PORT_TAG), "-j", "ACCEPT"])
    rules += [[INPUT_CHAIN, *e.match(), *_tag(EGRESS_TAG), "-j", "ACCEPT"] for e in allowed]
    rules.append([INPUT_CHAIN, "-j", "DROP"])
    rules += [
        [FORWARD_CHAIN, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN"],
        [FORWARD_CHAIN, "-o", f"{BRIDGE_PREFIX}+", "-j", "DROP"],
    ]
    for server in sorted(set(dns)):
        for proto in ("udp", "tcp"):
            rules.append([FORWARD_CHAIN, "-d", f"{server}/32", "-p", proto, "-m", proto,
                          "--dport", "53", "-j", "RETURN"])
    rules += [[FORWARD_CHAIN, *e.match(), *_tag(EGRESS_TAG), "-j", "RETURN"] for e in allowed]
    rules += [[FORWARD_CHAIN, "-d", str(net), "-j", "DROP"] for net in BLOCKED]
    rules.append([FORWARD_CHAIN, "-j", "RETURN"])
    lines = ["*filter", f":{INPUT_CHAIN} - [0:0]", f":{FORWARD_CHAIN} - [0:0]"]
    lines += ["-A " + " ".join(rule) for rule in rules]
    return "\n".join([*lines, "COMMIT", ""])


def firewall6_ruleset() -> str:
    """``ip6tables-restore --noflush`` input: every IPv6 packet from or to a lockstep
    bridge is dropped (lockstep networks are IPv4 only)."""
    return "\n".join(["*filter", f":{INPUT_CHAIN} - [0:0]", f":{FORWARD_CHAIN} - [0:0]",
                      f"-A {INPUT_CHAIN} -j DROP", f"-A {FORWARD_CHAIN} -j DROP", "COMMIT", ""])


def jump_rules() -> list[list[str]]:
    """The IPv4 jumps into lockstep's chains (checked with -C, inserted first with -I)."""
    return [
        ["INPUT", "-i", f"{BRIDGE_PREFIX}+", "-j", INPUT_CHAIN],
        ["DOCKER-USER", "-i", f"{BRIDGE_PREFIX}+", "-j", FORWARD_CHAIN],
    ]


def jump6_rules() -> list[list[str]]:
    """The IPv6 jumps (FORWARD itself: Docker makes no IPv6 DOCKER-USER before 27)."""
    return [
        ["INPUT", "-i", f"{BRIDGE_PREFIX}+", "-j", INPUT_CHAIN],
        ["FORWARD", "-i", f"{BRIDGE_PREFIX}+", "-j", FORWARD_CHAIN],
        ["FORWARD", "-o", f"{BRIDGE_PREFIX}+", "-j", FORWARD_CHAIN],
    ]


def written_allowances(rules: str) -> tuple[set[int], set[Egress]]:
    """(host ports, allowed destinations) in ``iptables -S LOCKSTEP-INPUT`` output (pure);
    also reads the untagged port rules older lockstep versions wrote."""
    ports: set[int] = set()
    egress: set[Egress] = set()
    for line in rules.splitlines():
        words = line.split()
        if words[:2] != ["-A", INPUT_CHAIN] or words[-2:] != ["-j", "ACCEPT"]:
            continue
        opts = dict(zip(words[2::2], words[3::2], strict=False))
        if opts.get("--comment") == EGRESS_TAG and "-d" in opts:
            port = f":{opts['--dport']}/{opts['-p']}" if "--dport" in opts else ""
            egress.add(parse_egress(opts["-d"] + port))
        elif "--dport" in opts and opts.get("-p") == "tcp":
            ports.add(int(opts["--dport"]))
    return ports, egress


def allowed_ports(rules: str) -> set[int]:
    """The host ports ``iptables -S LOCKSTEP-INPUT`` output accepts (pure)."""
    return written_allowances(rules)[0]


def _run(binary: str, args: list[str], stdin: str | None = None):
    wait = ["-w", "5"]
    return subprocess.run([binary, *wait, *args], input=stdin, capture_output=True,
                          text=True, timeout=30)


def _apply(binary: str, ruleset: str, jumps: list[list[str]]) -> None:
    done = _run(f"{binary}-restore", ["--noflush"], stdin=ruleset)
    if done.returncode != 0:
        raise FirewallError(f"{binary}-restore failed: {done.stderr.strip()}; {FIX}")
    for rule in jumps:
        if _run(binary, ["-C", *rule]).returncode != 0:
            added = _run(binary, ["-I", rule[0], "1", *rule[1:]])
            if added.returncode != 0:
                raise FirewallError(
                    f"cannot add '{binary} -I {' '.join(rule)}': {added.stderr.strip()}; {FIX}")


def host_has_ipv6() -> bool:
    return Path("/proc/net/if_inet6").exists()


def sync_firewall(*, gateways: Iterable[str], host_ports: Sequence[int],
                  egress: Iterable[Egress] = (), resolv_conf: str = "/etc/resolv.conf") -> None:
    """Write lockstep's IPv4 and IPv6 chains (keeping the ports and destinations other hubs
    allowed) and make sure the hooks jump to them. The caller holds the host-wide lock."""
    try:
        current = _run("iptables", ["-S", INPUT_CHAIN])
        ports, allowed = (written_allowances(current.stdout) if current.returncode == 0
                          else (set(), set()))
        try:
            dns = nameservers(Path(resolv_conf).read_text())
        except OSError:
            dns = ()
        _apply("iptables", firewall_ruleset(
            gateways=gateways, host_ports=sorted(ports | set(host_ports)),
            egress=allowed | set(egress), dns=dns), jump_rules())
        if host_has_ipv6():
            _apply("ip6tables", firewall6_ruleset(), jump6_rules())
    except FileNotFoundError as exc:
        raise FirewallError(f"{exc.filename} is not installed; {FIX}") from exc


def facts(*, enabled: bool = True):
    """The host's firewall as ``lockstep audit`` judges it (``netaudit.FirewallFacts``)."""
    from spawner.docker.netaudit import FirewallFacts

    nf = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    bridge_nf = nf.read_text().strip() if nf.exists() else ""
    try:
        four = _run("iptables", ["-S"])
        six = _run("ip6tables", ["-S"]) if host_has_ipv6() else None
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        return FirewallFacts(enabled=enabled, bridge_nf=bridge_nf, error=str(exc))
    error = four.stderr.strip() if four.returncode else ""
    return FirewallFacts(enabled=enabled, rules4=four.stdout, rules6=six.stdout if six else "",
                         has_ipv6=six is not None, bridge_nf=bridge_nf, error=error)


def remove_firewall() -> None:
    """Remove the jumps and chains (for tests and uninstall); missing pieces are ignored."""
    for binary, jumps in (("iptables", jump_rules()), ("ip6tables", jump6_rules())):
        try:
            for rule in jumps:
                while _run(binary, ["-C", *rule]).returncode == 0:
                    _run(binary, ["-D", *rule])
            for chain in (INPUT_CHAIN, FORWARD_CHAIN):
                _run(binary, ["-F", chain])
                _run(binary, ["-X", chain])
        except FileNotFoundError:
            continue


def gateway_of(network: dict) -> str:
    """The bridge gateway address of an inspected network ('' when it has none)."""
    for config in (network.get("IPAM") or {}).get("Config") or ():
        if config.get("Gateway"):
            return str(config["Gateway"])
    return ""
