"""``allowed_egress`` entries and resolv.conf nameservers, parsed with ipaddress."""

import pytest

from spawner.docker.egress import BLOCKED, Egress, EgressError, nameservers, parse_all, parse_egress
from spawner.docker.site import site_from_config
from spawner.errors import LockstepError


def test_entries_parse_to_canonical_networks():
    assert parse_egress("10.20.0.5") == Egress("10.20.0.5/32")
    assert parse_egress("10.20.0.5:5432") == Egress("10.20.0.5/32", 5432, "tcp")
    assert parse_egress(" 10.20.0.0/16:53/udp ") == Egress("10.20.0.0/16", 53, "udp")
    assert parse_egress("192.168.50.7/24") == Egress("192.168.50.0/24")  # host bits dropped
    assert str(parse_egress("10.20.0.5:5432")) == "10.20.0.5/32:5432/tcp"
    assert parse_egress("10.0.0.1:22").match() == ["-d", "10.0.0.1/32", "-p", "tcp", "-m",
                                                   "tcp", "--dport", "22"]
    assert parse_all(["10.0.0.2", "10.0.0.1", "10.0.0.1/32"]) == (Egress("10.0.0.1/32"),
                                                                   Egress("10.0.0.2/32"))


@pytest.mark.parametrize(("entry", "says"), [
    ("169.254.169.254/32", "link-local"),
    ("169.254.0.0:80", "link-local"),
    ("160.0.0.0/4", "link-local"),  # a wide range that contains 169.254/16
    ("0.0.0.0/0:443", "link-local"),
    ("fd00::1/128", "IPv6"),
    ("10.0.0.1:0", "1-65535"),
    ("10.0.0.1:70000", "1-65535"),
    ("10.0.0.1:22/icmp", "not understood"),
    ("10.0.0.300", "not an IP network"),
    ("169.254.0.0x", "not an IP network"),  # never a string prefix test
])
def test_refused_entries_name_the_option_and_fix(entry, says):
    with pytest.raises(EgressError) as info:
        parse_egress(entry)
    assert says in str(info.value) and "allowed_egress" in str(info.value)


def test_not_link_local_although_it_starts_alike():
    assert parse_egress("169.25.0.1") == Egress("169.25.0.1/32")  # a prefix test would refuse


def test_blocked_ranges_are_the_charts_and_more():
    assert [str(n) for n in BLOCKED] == ["10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16",
                                         "172.16.0.0/12", "192.168.0.0/16"]


def test_nameservers_from_resolv_conf():
    text = ("# generated\nnameserver 10.255.255.53\nnameserver 127.0.0.53\n"
            "nameserver fd00::53\nnameserver 10.255.255.53 # again\nsearch lan\n"
            "nameserver bogus\n")
    assert nameservers(text) == ("10.255.255.53",)


def test_site_reads_and_checks_allowed_egress():
    site = site_from_config({"LockstepDockerSpawner": {"allowed_egress": ["10.1.1.1:22"]}})
    assert site.allowed_egress == (Egress("10.1.1.1/32", 22),)
    with pytest.raises(LockstepError, match="allowed_egress.*link-local"):
        site_from_config({"LockstepDockerSpawner": {"allowed_egress": ["169.254.169.254"]}})
