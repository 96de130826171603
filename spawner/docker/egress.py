"""Where lockstep containers may not go, and the exceptions a site allows: parsed, pure.

The Docker twin of the chart's ``singleuser.networkPolicy.blockedCidrs`` and
``projectEgress.<p>.cidrs``. ``BLOCKED`` lists the IPv4 ranges a container never reaches
(link-local, where cloud metadata lives, and the private and carrier-grade NAT ranges,
where the host's other services and the site's intranet live); the host's own addresses
are kept apart by the INPUT chain (``spawner.docker.firewall``), whatever range they are in.

``c.LockstepDockerSpawner.allowed_egress`` names exceptions, each ``CIDR``, ``CIDR:PORT``
or ``CIDR:PORT/udp`` (TCP by default, every port when none is given); ``parse_egress``
turns one into an ``Egress`` with ``ipaddress`` (never a string prefix test) and refuses,
with the option's name and the fix, what the site may not allow: IPv6 (lockstep containers
get none), any range touching link-local 169.254.0.0/16 (the chart refuses it too), ports
outside 1-65535. ``nameservers`` reads the host's ``resolv.conf`` text: Docker's embedded
DNS forwards queries to those servers from inside the container's network namespace, so
the firewall lets port 53 through to exactly them.

Pure: no I/O, no iptables; the caller reads files and writes rules.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from spawner.errors import LockstepError

OPTION = "c.LockstepDockerSpawner.allowed_egress"
LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")
BLOCKED = tuple(ipaddress.ip_network(c) for c in (
    "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
))
_ENTRY = re.compile(r"^(?P<net>[^:]+?)(?::(?P<port>\d+)(?:/(?P<proto>tcp|udp))?)?$")
EXAMPLE = f'{OPTION} = ["10.20.0.5/32:5432", "192.168.50.0/24:443", "10.20.0.53:53/udp"]'


class EgressError(LockstepError):
    """An ``allowed_egress`` entry that is malformed or not allowed."""


@dataclass(frozen=True, order=True)
class Egress:
    """One allowed destination: an IPv4 network, a port (0 = every port) and a protocol."""

    network: str  # canonical CIDR, e.g. "10.20.0.5/32"
    port: int = 0
    proto: str = "tcp"

    def __str__(self) -> str:
        return self.network + (f":{self.port}/{self.proto}" if self.port else "")

    def match(self) -> list[str]:
        """iptables match options for this destination (``-d``, and ``-p``/``--dport``)."""
        args = ["-d", self.network]
        if self.port:
            args += ["-p", self.proto, "-m", self.proto, "--dport", str(self.port)]
        return args


def parse_egress(entry: str) -> Egress:
    """One ``allowed_egress`` entry as an ``Egress``; ``EgressError`` naming the fix."""
    text = str(entry).strip()
    found = _ENTRY.match(text)
    fix = f"write CIDR, CIDR:PORT or CIDR:PORT/udp, e.g. {EXAMPLE}"
    if text.count(":") > 1 or text.startswith("["):
        found = None  # IPv6, with or without a port
    elif not found:
        raise EgressError(f"{OPTION} entry {entry!r} is not understood; {fix}")
    if found is None:
        raise EgressError(f"{OPTION} entry {entry!r} is IPv6; lockstep containers get no "
                          "IPv6 at all (the firewall drops it), so only IPv4 ranges can be "
                          "allowed. Remove the entry.")
    try:
        network = ipaddress.ip_network(found["net"], strict=False)
    except ValueError:
        raise EgressError(f"{OPTION} entry {entry!r}: {found['net']!r} is not an IP "
                          f"network; {fix}") from None
    if network.version != 4:  # e.g. "::1" (one colon pair less than the test above)
        raise EgressError(f"{OPTION} entry {entry!r} is IPv6; only IPv4 ranges can be allowed")
    if network.overlaps(LINK_LOCAL):
        raise EgressError(f"{OPTION} entry {entry!r} touches link-local {LINK_LOCAL}, where "
                          "cloud metadata (169.254.169.254) lives; remove it (the chart "
                          "refuses the same range)")
    port = int(found["port"] or 0)
    if found["port"] is not None and not 1 <= port <= 65535:
        raise EgressError(f"{OPTION} entry {entry!r}: port {port} is not 1-65535; {fix}")
    return Egress(str(network), port, found["proto"] or "tcp")


def parse_all(entries: Iterable[str]) -> tuple[Egress, ...]:
    """Every entry parsed, duplicates dropped, sorted (deterministic rules)."""
    return tuple(sorted({parse_egress(e) for e in entries}))


def nameservers(resolv_conf: str) -> tuple[str, ...]:
    """IPv4 ``nameserver`` addresses of a ``resolv.conf`` text, loopback ones left out
    (Docker does not hand those to containers); sorted, deduplicated."""
    found = set()
    for line in resolv_conf.splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                address = ipaddress.ip_address(parts[1])
            except ValueError:
                continue
            if address.version == 4 and not address.is_loopback:
                found.add(address)
    return tuple(str(a) for a in sorted(found))
