"""The chart's link-local guard is a CIDR overlap test, not a string prefix (issue 11,
finding 8): every project egress CIDR that shares an address with 169.254.0.0/16 is refused,
every other is rendered, exactly as Python's ``ipaddress`` decides."""

from __future__ import annotations

import ipaddress
import subprocess

import pytest

from tests.k8s.k8s_helpers import CHART

LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")
CIDRS = ["169.254.0.0/16", "169.254.169.254/32", "169.0.0.0/8", "168.0.0.0/7",
         "128.0.0.0/1", "0.0.0.0/0", "169.254.128.0/17", "169.255.0.0/16", "10.0.0.0/8",
         "170.0.0.0/8", "169.253.255.255/32", "168.0.0.0/8", "172.16.0.0/12"]


def render(helm3, cidr: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [helm3, "template", "r", str(CHART), "-f", str(CHART / "examples" / "default.yaml"),
         "--set", f"singleuser.networkPolicy.projectEgress.forecast.cidrs={{{cidr}}}"],
        capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("cidr", CIDRS)
def test_overlap_with_link_local_is_refused_as_ipaddress_decides(helm3, cidr):
    proc = render(helm3, cidr)
    if ipaddress.ip_network(cidr).overlaps(LINK_LOCAL):
        assert proc.returncode != 0 and "overlaps link-local" in proc.stderr, proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
        assert f"cidr: {cidr}" in proc.stdout


@pytest.mark.parametrize("cidr", ["169.254.1/16", "fe80::/10", "10.0.0.0/33", "999.1.1.1/8",
                                  "10.0.0.0"])
def test_a_malformed_or_non_ipv4_cidr_is_refused_by_the_schema(helm3, cidr):
    proc = render(helm3, cidr)
    assert proc.returncode != 0 and "cidrs" in proc.stderr, proc.stderr
