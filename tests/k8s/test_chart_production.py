"""What the standalone chart gives a production site: ingress with TLS, disruption budgets,
DNS egress that works on managed clusters, a persistent session log with an external
database, claims removed with their user, and internal_ssl refused by name. Every rendered
object is validated strictly (1.29 and 1.37); the claim cleanup runs the real spawner
against the fake API under the chart's Role."""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess

import pytest

from tests.k8s.k8s_helpers import CHART, by_kind, find, helm_template, make_spawner
from tests.k8s.kmock_api import ApiServer, claims, config, pods

PRODUCTION = CHART / "examples" / "production.yaml"
DNS_CIDRS = {"169.254.20.10/32", "169.254.169.254/32"}  # NodeLocal DNSCache, cloud resolver


def test_ingress_with_tls_routes_to_the_proxy(helm):
    docs = helm_template(helm, PRODUCTION)
    ingress = find(docs, "Ingress", "r-lockstep")
    assert ingress["spec"]["tls"] == [{"hosts": ["hub.example.com"],
                                       "secretName": "lockstep-hub-tls"}]
    (rule,) = ingress["spec"]["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    service = find(docs, "Service", "-proxy-public")
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert not by_kind(helm_template(helm, CHART / "examples" / "default.yaml"), "Ingress")


def test_ingress_without_hosts_is_refused(helm3):
    proc = subprocess.run([helm3, "template", "r", str(CHART), "-f", str(PRODUCTION),
                           "--set", "ingress.hosts=null"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "ingress.hosts" in proc.stderr


def test_disruption_budgets_select_their_pods(helm3):
    docs = helm_template(helm3, PRODUCTION)
    for component, key, value in (("hub", "minAvailable", 1), ("proxy", "maxUnavailable", 0)):
        pdb = find(docs, "PodDisruptionBudget", f"-{component}")
        assert pdb["spec"][key] == value
        pod = find(docs, "Deployment", f"-{component}")["spec"]["template"]["metadata"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod["labels"].items()
    assert not by_kind(helm_template(helm3, CHART / "examples" / "default.yaml"),
                       "PodDisruptionBudget")


def test_dns_egress_works_on_managed_clusters(helm3):
    docs = helm_template(helm3, PRODUCTION)
    for suffix in ("-hub", "-proxy", "-singleuser"):
        policy = find(docs, "NetworkPolicy", suffix)
        dns = [r for r in policy["spec"]["egress"]
               if {p["port"] for p in r.get("ports", [])} == {53}]
        (rule,) = dns
        assert {p["protocol"] for p in rule["ports"]} == {"UDP", "TCP"}
        cidrs = {peer["ipBlock"]["cidr"] for peer in rule["to"] if "ipBlock" in peer}
        assert DNS_CIDRS <= cidrs and {"namespaceSelector": {}} in rule["to"]
        for cidr in cidrs:  # port 53 only: the metadata service itself stays closed
            assert ipaddress.ip_network(cidr).prefixlen >= 8
    docs = helm_template(helm3, PRODUCTION, "--set", "dnsEgress.extraCidrs=null")
    rule = next(r for r in find(docs, "NetworkPolicy", "-singleuser")["spec"]["egress"]
                if {p["port"] for p in r.get("ports", [])} == {53})
    assert rule["to"] == [{"namespaceSelector": {}}]


def test_session_log_on_a_claim_with_an_external_database(helm3):
    docs = helm_template(helm3, PRODUCTION)
    (claim,) = by_kind(docs, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == "r-lockstep-hub-state"
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    spec = find(docs, "Deployment", "-hub")["spec"]["template"]["spec"]
    state = next(v for v in spec["volumes"] if v["name"] == "state")
    assert state == {"name": "state", "persistentVolumeClaim": {"claimName":
                                                                "r-lockstep-hub-state"}}
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "state")
    assert mount["mountPath"] == "/srv/jupyterhub"  # c.Lockstep.data_dir lives below it
    config_py = (CHART / "files" / "jupyterhub_config.py").read_text()
    assert 'c.Lockstep.data_dir = "/srv/jupyterhub/lockstep"' in config_py


def test_internal_ssl_is_refused_by_name(helm3):
    proc = subprocess.run([helm3, "template", "r", str(CHART), "-f", str(PRODUCTION),
                           "--set", "hub.config.JupyterHub.internal_ssl=true"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "internal_ssl is not supported" in proc.stderr and "docs/z2jh.md" in proc.stderr


@pytest.mark.kmock(cls=ApiServer)
async def test_removing_a_user_deletes_their_home_claims(api, kubelet, tmp_path):
    """Under the chart's Role (the ``api`` fixture enforces it): a removed user's home
    claims go; the project's shared workspace stays."""
    spawner = make_spawner(config(api, tmp_path))
    spawner.user_options = {"project": "forecast"}
    await asyncio.wait_for(spawner.start(), 30)
    await asyncio.wait_for(spawner.stop(now=True), 30)
    assert set(claims(api)) == {"lockstep-ws-forecast", "lockstep-home-forecast.alice"}
    await asyncio.wait_for(spawner.delete_forever(), 30)
    assert set(claims(api)) == {"lockstep-ws-forecast"}
    assert pods(api) == {}
