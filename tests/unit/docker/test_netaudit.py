"""``lockstep audit``'s network and host-firewall rows, over recorded ``iptables -S``."""

from spawner.docker.egress import parse_all
from spawner.docker.firewall import (
    firewall6_ruleset,
    firewall_ruleset,
    jump6_rules,
    jump_rules,
    network_create_kwargs,
)
from spawner.docker.netaudit import FirewallFacts, audit_networks


def _printed(ruleset: str, jumps: list[list[str]]) -> str:
    """What ``iptables -S`` prints once the ruleset and the jumps are installed."""
    lines = [line for line in ruleset.splitlines() if line.startswith("-A ")]
    return "\n".join(lines + ["-A " + " ".join(j) for j in jumps]) + "\n"


def _network(name: str, **changes) -> dict:
    kwargs = network_create_kwargs(name, f"lockstep-{name}", internal=False)
    net = {"Name": kwargs["name"], "Id": "0123456789abcdef", "Options": kwargs["options"],
           "EnableIPv6": kwargs["enable_ipv6"], "Labels": kwargs["labels"]}
    return {**net, **changes}


GOOD = FirewallFacts(
    rules4=_printed(firewall_ruleset(gateways=["192.168.176.1"], host_ports=[8081],
                                     egress=parse_all(["10.1.1.1:22"])), jump_rules()),
    rules6=_printed(firewall6_ruleset(), jump6_rules()), bridge_nf="1")


def _rows(networks, host) -> dict:
    return {(r.container, r.check): (r.cis, r.status, r.detail)
            for r in audit_networks(networks, host)}


def test_what_lockstep_writes_passes_with_its_cis_ids():
    rows = _rows([_network("iris")], GOOD)
    assert rows == {
        ("lockstep-iris", "icc"): ("2.1", "pass", ""),
        ("lockstep-iris", "ipv6-off"): ("-", "pass", ""),
        ("host", "firewall-chains"): ("-", "pass", ""),
        ("host", "ipv6-filtered"): ("-", "pass", ""),
        ("host", "bridge-netfilter"): ("-", "pass", ""),
    }


def test_an_old_network_and_a_bare_host_fail_naming_the_fix():
    old = _network("wine", Options={"com.docker.network.bridge.name": "lsbr-x",
                                    "com.docker.network.bridge.enable_icc": "true"},
                   EnableIPv6=True)
    rows = _rows([old], FirewallFacts(rules4="-P INPUT ACCEPT\n", rules6="", bridge_nf="0"))
    assert rows[("lockstep-wine", "icc")][:2] == ("2.1", "fail")
    assert "docker network rm lockstep-wine" in rows[("lockstep-wine", "icc")][2]
    assert rows[("lockstep-wine", "ipv6-off")][:2] == ("-", "fail")
    chains = rows[("host", "firewall-chains")]
    assert chains[1] == "fail" and "INPUT -i lsbr+ -j LOCKSTEP-INPUT" in chains[2]
    assert "dropping 169.254.0.0/16" in chains[2]
    assert rows[("host", "ipv6-filtered")][1] == "fail"
    assert "bridge-nf-call-iptables is 0" in rows[("host", "bridge-netfilter")][2]


def test_partial_chains_fail_and_sites_without_the_firewall_are_na():
    no_metadata = GOOD.rules4.replace("-A LOCKSTEP-FORWARD -d 169.254.0.0/16 -j DROP\n", "")
    rows = _rows([], FirewallFacts(rules4=no_metadata, rules6=GOOD.rules6, bridge_nf="1"))
    assert rows[("host", "firewall-chains")][1] == "fail"
    rows = _rows([], FirewallFacts(enabled=False))
    assert {v[1] for v in rows.values()} == {"n/a"}
    rows = _rows([], FirewallFacts(rules4=GOOD.rules4, has_ipv6=False, bridge_nf="1"))
    assert rows[("host", "ipv6-filtered")][1] == "n/a"


def test_networks_not_made_by_lockstep_are_skipped():
    assert [r.container for r in audit_networks([{"Name": "bridge", "Options": {}}], GOOD)] \
        == ["host", "host", "host"]
