"""Project networks and firewall rules, pinned exactly."""

from spawner.docker.firewall import (
    allowed_ports,
    bridge_name,
    firewall_ruleset,
    gateway_of,
    jump_rules,
    network_create_kwargs,
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
    assert kw["labels"] == {"org.lockstep.managed": "true", "org.lockstep.project": "iris"}


def test_ruleset_exact():
    rules = firewall_ruleset(bridges=["lsbr-b", "lsbr-a", "lsbr-a"], host_ports=[8081, 8081])
    assert rules.splitlines() == [
        "*filter",
        ":LOCKSTEP-INPUT - [0:0]",
        ":LOCKSTEP-FORWARD - [0:0]",
        "-A LOCKSTEP-INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        "-A LOCKSTEP-INPUT -p tcp -m tcp --dport 8081 -j ACCEPT",
        "-A LOCKSTEP-INPUT -j DROP",
        "-A LOCKSTEP-FORWARD -i lsbr-a -o lsbr-a -j RETURN",
        "-A LOCKSTEP-FORWARD -i lsbr-b -o lsbr-b -j RETURN",
        "-A LOCKSTEP-FORWARD -i lsbr+ -o lsbr+ -j DROP",
        "-A LOCKSTEP-FORWARD -j RETURN",
        "COMMIT",
    ]


def _matches(rule: list[str], packet: dict) -> bool:
    """iptables' matching for the options lockstep writes (``+`` ends an interface prefix)."""
    opts = dict(zip(rule[::2], rule[1::2], strict=False))
    for flag, key in (("-i", "in"), ("-o", "out")):
        want, have = opts.get(flag), packet.get(key) or ""
        if want and not (have.startswith(want[:-1]) if want.endswith("+") else have == want):
            return False
    if "-p" in opts and (opts["-p"] != packet.get("proto") or
                         int(opts["--dport"]) != packet.get("dport")):
        return False
    return "--ctstate" not in opts or packet.get("state") in opts["--ctstate"].split(",")


def _verdict(packet: dict, *, hook: str, host_ports: list[int]) -> str:
    """Walk ``packet`` through ``hook`` (INPUT or DOCKER-USER) as the kernel would, with
    the jumps and the chains lockstep installs: ACCEPT, DROP, or PASS (left to the rest of
    the host's and Docker's rules)."""
    chains: dict[str, list[list[str]]] = {}
    for line in firewall_ruleset(bridges=[bridge_name("iris"), bridge_name("wine")],
                                 host_ports=host_ports).splitlines():
        if line.startswith("-A "):
            chain, *rule = line[3:].split()
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
    """Traffic through the installed jumps and chains: a server reaches the Hub's port and
    its own project, never another project or another host port; other bridges are left to
    Docker."""
    iris, wine = bridge_name("iris"), bridge_name("wine")
    hub = {"hook": "INPUT", "host_ports": [8081]}
    fwd = {"hook": "DOCKER-USER", "host_ports": [8081]}
    assert _verdict({"in": iris, "proto": "tcp", "dport": 8081}, **hub) == "ACCEPT"
    assert _verdict({"in": iris, "proto": "tcp", "dport": 5000}, **hub) == "DROP"  # registry
    assert _verdict({"in": iris, "proto": "udp", "dport": 53}, **hub) == "DROP"
    assert _verdict({"in": wine, "proto": "tcp", "dport": 22, "state": "ESTABLISHED"},
                    **hub) == "ACCEPT"  # replies, e.g. the proxy talking to a server
    assert _verdict({"in": "docker0", "proto": "tcp", "dport": 5000}, **hub) == "PASS"
    assert _verdict({"in": iris, "out": iris}, **fwd) == "PASS"  # within one project
    assert _verdict({"in": iris, "out": wine}, **fwd) == "DROP"
    assert _verdict({"in": wine, "out": bridge_name("new")}, **fwd) == "DROP"  # not yet synced
    assert _verdict({"in": iris, "out": "eth0"}, **fwd) == "PASS"  # egress: Docker decides
    assert _verdict({"in": "br-0123456789ab", "out": wine}, **fwd) == "PASS"


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
    hub keeps the first one's port rather than locking its servers out."""
    printed = ("-N LOCKSTEP-INPUT\n"
               "-A LOCKSTEP-INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
               "-A LOCKSTEP-INPUT -p tcp -m tcp --dport 35735 -j ACCEPT\n"
               "-A LOCKSTEP-INPUT -p tcp -m tcp --dport 8081 -j ACCEPT\n"
               "-A LOCKSTEP-INPUT -p udp -m udp --dport 53 -j ACCEPT\n"
               "-A LOCKSTEP-INPUT -j DROP\n")
    assert allowed_ports(printed) == {35735, 8081}
    assert allowed_ports(firewall_ruleset(bridges=[], host_ports=[9000, 8081])) == {8081, 9000}
    assert allowed_ports("") == set()
