"""Project networks and firewall rules, pinned exactly."""

import ipaddress
import re

from spawner.docker.egress import parse_all
from spawner.docker.firewall import (
    allowed_ports,
    bridge_name,
    firewall6_ruleset,
    firewall_ruleset,
    gateway_of,
    jump6_rules,
    jump_rules,
    network_create_kwargs,
    written_allowances,
)


def test_bridge_name_is_deterministic_and_short():
    assert bridge_name("iris") == bridge_name("iris")
    assert bridge_name("iris") != bridge_name("wine")
    assert len(bridge_name("a" * 40)) <= 15
    assert bridge_name("iris").startswith("lsbr-")


def test_network_kwargs():
    kw = network_create_kwargs("iris", "lockstep-iris", internal=False)
    assert kw["name"] == "lockstep-iris" and kw["driver"] == "bridge"
    assert kw["options"]["com.docker.network.bridge.name"] == bridge_name("iris")
    assert kw["options"]["com.docker.network.bridge.enable_icc"] == "false"  # CIS 2.1 twin
    assert kw["enable_ipv6"] is False
    assert kw["labels"] == {"org.lockstep.managed": "true", "org.lockstep.project": "iris"}


def test_ruleset_exact():
    rules = firewall_ruleset(gateways=["192.168.176.1", "192.168.176.1", "", "172.30.0.1"],
                             host_ports=[8081, 8081], dns=["10.255.255.53"],
                             egress=parse_all(["10.20.0.5:5432", "192.168.50.0/24"]))
    tag = "-m comment --comment"
    assert rules.splitlines() == [
        "*filter",
        ":LOCKSTEP-INPUT - [0:0]",
        ":LOCKSTEP-FORWARD - [0:0]",
        "-A LOCKSTEP-INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        f"-A LOCKSTEP-INPUT -d 172.30.0.1/32 -p tcp -m tcp --dport 8081 {tag} "
        "lockstep-host-port -j ACCEPT",
        f"-A LOCKSTEP-INPUT -d 192.168.176.1/32 -p tcp -m tcp --dport 8081 {tag} "
        "lockstep-host-port -j ACCEPT",
        f"-A LOCKSTEP-INPUT -d 10.20.0.5/32 -p tcp -m tcp --dport 5432 {tag} lockstep-egress "
        "-j ACCEPT",
        f"-A LOCKSTEP-INPUT -d 192.168.50.0/24 {tag} lockstep-egress -j ACCEPT",
        "-A LOCKSTEP-INPUT -j DROP",
        "-A LOCKSTEP-FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j RETURN",
        "-A LOCKSTEP-FORWARD -o lsbr+ -j DROP",
        "-A LOCKSTEP-FORWARD -d 10.255.255.53/32 -p udp -m udp --dport 53 -j RETURN",
        "-A LOCKSTEP-FORWARD -d 10.255.255.53/32 -p tcp -m tcp --dport 53 -j RETURN",
        f"-A LOCKSTEP-FORWARD -d 10.20.0.5/32 -p tcp -m tcp --dport 5432 {tag} "
        "lockstep-egress -j RETURN",
        f"-A LOCKSTEP-FORWARD -d 192.168.50.0/24 {tag} lockstep-egress -j RETURN",
        "-A LOCKSTEP-FORWARD -d 10.0.0.0/8 -j DROP",
        "-A LOCKSTEP-FORWARD -d 100.64.0.0/10 -j DROP",
        "-A LOCKSTEP-FORWARD -d 169.254.0.0/16 -j DROP",
        "-A LOCKSTEP-FORWARD -d 172.16.0.0/12 -j DROP",
        "-A LOCKSTEP-FORWARD -d 192.168.0.0/16 -j DROP",
        "-A LOCKSTEP-FORWARD -j RETURN",
        "COMMIT",
    ]


def test_ipv6_ruleset_drops_everything_on_lockstep_bridges():
    assert firewall6_ruleset().splitlines() == [
        "*filter", ":LOCKSTEP-INPUT - [0:0]", ":LOCKSTEP-FORWARD - [0:0]",
        "-A LOCKSTEP-INPUT -j DROP", "-A LOCKSTEP-FORWARD -j DROP", "COMMIT"]
    assert jump6_rules() == [["INPUT", "-i", "lsbr+", "-j", "LOCKSTEP-INPUT"],
                             ["FORWARD", "-i", "lsbr+", "-j", "LOCKSTEP-FORWARD"],
                             ["FORWARD", "-o", "lsbr+", "-j", "LOCKSTEP-FORWARD"]]


def _matches(rule: list[str], packet: dict) -> bool:
    """iptables' matching for the options lockstep writes (``+`` ends an interface prefix,
    ``-d`` is a CIDR)."""
    opts = dict(zip(rule[::2], rule[1::2], strict=False))
    for flag, key in (("-i", "in"), ("-o", "out")):
        want, have = opts.get(flag), packet.get(key) or ""
        if want and not (have.startswith(want[:-1]) if want.endswith("+") else have == want):
            return False
    if "-d" in opts and ipaddress.ip_address(packet.get("dst", "0.0.0.0")) not in \
            ipaddress.ip_network(opts["-d"]):
        return False
    if "-p" in opts and (opts["-p"] != packet.get("proto") or
                         int(opts["--dport"]) != packet.get("dport")):
        return False
    return "--ctstate" not in opts or packet.get("state") in opts["--ctstate"].split(",")


GATEWAYS = ["192.168.176.1", "192.168.192.1"]


def _verdict(packet: dict, *, hook: str, host_ports: list[int], egress=()) -> str:
    """Walk ``packet`` through ``hook`` (INPUT or DOCKER-USER) as the kernel would, with
    the jumps and the chains lockstep installs: ACCEPT, DROP, or PASS (left to the rest of
    the host's and Docker's rules)."""
    chains: dict[str, list[list[str]]] = {}
    text = firewall_ruleset(gateways=GATEWAYS, host_ports=host_ports, dns=["10.255.255.53"],
                            egress=parse_all(egress))
    for line in text.splitlines():
        if line.startswith("-A "):
            chain, *rule = re.sub(r" -m comment --comment \S+", "", line[3:]).split()
            chains.setdefault(chain, []).append(rule)
    for jump in jump_rules():
        if jump[0] == hook and _matches(jump[1:-2], packet):
            for rule in chains[jump[-1]]:
                if _matches(rule[:-2], packet):
                    if rule[-1] in ("ACCEPT", "DROP"):
                        return rule[-1]
                    break  # RETURN: back to the hook
    return "PASS"


def test_firewall_keeps_projects_apart_and_off_the_host():
    """Traffic through the installed jumps and chains: a server reaches the Hub's port on a
    lockstep gateway and nothing else of the host, no other server (its project's or
    another's), no private or link-local range; other bridges are left to Docker."""
    iris, wine = bridge_name("iris"), bridge_name("wine")
    hub = {"hook": "INPUT", "host_ports": [8081]}
    fwd = {"hook": "DOCKER-USER", "host_ports": [8081]}
    gw = GATEWAYS[0]
    assert _verdict({"in": iris, "dst": gw, "proto": "tcp", "dport": 8081}, **hub) == "ACCEPT"
    for elsewhere in ("10.213.0.1", "169.254.77.1", "192.0.2.2", "172.17.0.1"):
        assert _verdict({"in": iris, "dst": elsewhere, "proto": "tcp", "dport": 8081},
                        **hub) == "DROP", elsewhere  # the hub port on another host address
    assert _verdict({"in": iris, "dst": gw, "proto": "tcp", "dport": 5000}, **hub) == "DROP"
    assert _verdict({"in": iris, "dst": gw, "proto": "udp", "dport": 53}, **hub) == "DROP"
    assert _verdict({"in": wine, "dst": gw, "proto": "tcp", "dport": 22,
                     "state": "ESTABLISHED"}, **hub) == "ACCEPT"  # replies to the proxy
    assert _verdict({"in": "docker0", "dst": gw, "proto": "tcp", "dport": 5000},
                    **hub) == "PASS"
    assert _verdict({"in": iris, "out": iris}, **fwd) == "DROP"  # a teammate's server
    assert _verdict({"in": iris, "out": wine}, **fwd) == "DROP"
    assert _verdict({"in": wine, "out": bridge_name("new")}, **fwd) == "DROP"  # not synced
    assert _verdict({"in": iris, "out": iris, "state": "ESTABLISHED"}, **fwd) == "PASS"
    for private in ("169.254.169.254", "10.1.2.3", "172.16.0.9", "192.168.1.1", "100.64.0.1"):
        assert _verdict({"in": iris, "out": "eth0", "dst": private, "proto": "tcp",
                         "dport": 80}, **fwd) == "DROP", private
    assert _verdict({"in": iris, "out": "eth0", "dst": "10.255.255.53", "proto": "udp",
                     "dport": 53}, **fwd) == "PASS"  # DNS to the host's nameserver
    assert _verdict({"in": iris, "out": "eth0", "dst": "10.255.255.53", "proto": "tcp",
                     "dport": 80}, **fwd) == "DROP"
    assert _verdict({"in": iris, "out": "eth0", "dst": "93.184.216.34", "proto": "tcp",
                     "dport": 443}, **fwd) == "PASS"  # the internet: Docker decides
    assert _verdict({"in": "br-0123456789ab", "out": wine}, **fwd) == "PASS"


def test_allowed_egress_opens_exactly_what_it_names():
    site = {"egress": ["10.20.0.5/32:5432", "192.168.50.0/24"], "host_ports": [8081]}
    fwd = {"hook": "DOCKER-USER", **site}
    out = {"in": bridge_name("iris"), "out": "eth0", "proto": "tcp"}
    assert _verdict({**out, "dst": "10.20.0.5", "dport": 5432}, **fwd) == "PASS"
    assert _verdict({**out, "dst": "10.20.0.5", "dport": 5433}, **fwd) == "DROP"
    assert _verdict({**out, "dst": "10.20.0.6", "dport": 5432}, **fwd) == "DROP"
    assert _verdict({**out, "dst": "192.168.50.77", "dport": 22}, **fwd) == "PASS"
    assert _verdict({**out, "dst": "192.168.51.77", "dport": 22}, **fwd) == "DROP"
    host = {"in": bridge_name("iris"), "proto": "tcp", "dst": "10.20.0.5", "dport": 5432}
    assert _verdict(host, hook="INPUT", **site) == "ACCEPT"  # the same address on the host


def test_gateway_of():
    assert gateway_of({"IPAM": {"Config": [{"Subnet": "172.20.0.0/16",
                                            "Gateway": "172.20.0.1"}]}}) == "172.20.0.1"
    assert gateway_of({"IPAM": {"Config": []}}) == ""


def test_pull_progress_never_goes_backwards():
    from spawner.docker.engine import pull_fraction, track_pull_event

    events = [
        {"id": "a", "status": "Pulling fs layer"},
        {"id": "b", "status": "Pulling fs layer"},
        {"id": "a", "status": "Downloading", "progressDetail": {"current": 50, "total": 100}},
        {"id": "b", "status": "Downloading", "progressDetail": {"current": 100, "total": 100}},
        {"id": "a", "status": "Download complete"},
        {"id": "a", "status": "Extracting", "progressDetail": {"current": 10, "total": 100}},
        {"id": "a", "status": "Pull complete"},
        {"id": "b", "status": "Extracting", "progressDetail": {"current": 100, "total": 100}},
        {"id": "b", "status": "Pull complete"},
    ]
    layers: dict = {}
    seen = []
    for event in events:
        track_pull_event(layers, event)
        seen.append(pull_fraction(layers)[0])
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert pull_fraction(layers)[1] == "downloaded 0 of 0 MB, unpacked 2 of 2 layers"


def test_pull_header_events_are_not_layers():
    from spawner.docker.engine import track_pull_event

    layers: dict = {}
    track_pull_event(layers, {"status": "Pulling from lockstep/iris", "id": "sha256:abc"})
    track_pull_event(layers, {"status": "Digest: sha256:abc"})
    assert layers == {}


def test_allowed_ports_read_back_what_another_hub_wrote():
    """``iptables -S LOCKSTEP-INPUT`` as printed here (iptables 1.8, nf_tables): a second
    hub keeps the first one's port and allowed destinations rather than locking its servers
    out; the untagged rules of older lockstep versions are read too."""
    printed = ("-N LOCKSTEP-INPUT\n"
               "-A LOCKSTEP-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
               "-A LOCKSTEP-INPUT -p tcp -m tcp --dport 35735 -j ACCEPT\n"
               "-A LOCKSTEP-INPUT -d 192.168.176.1/32 -p tcp -m tcp --dport 8081 -m comment "
               "--comment lockstep-host-port -j ACCEPT\n"
               "-A LOCKSTEP-INPUT -d 10.20.0.53/32 -p udp -m udp --dport 53 -m comment "
               "--comment lockstep-egress -j ACCEPT\n"
               "-A LOCKSTEP-INPUT -d 192.168.50.0/24 -m comment --comment lockstep-egress "
               "-j ACCEPT\n"
               "-A LOCKSTEP-INPUT -j DROP\n")
    ports, egress = written_allowances(printed)
    assert ports == {35735, 8081}
    assert sorted(map(str, egress)) == ["10.20.0.53/32:53/udp", "192.168.50.0/24"]
    rules = firewall_ruleset(gateways=["172.30.0.1"], host_ports=[9000, 8081],
                             egress=parse_all(["10.1.1.1:22"]))
    assert allowed_ports(rules) == {8081, 9000}
    assert written_allowances(rules)[1] == set(parse_all(["10.1.1.1:22"]))
    assert allowed_ports("") == set()
