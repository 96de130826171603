"""lockstep adopted inside a real Zero to JupyterHub release (``helm/z2jh/lockstep-values.yaml``).

z2jh's chart (``shared/anchors/z2jh``, unchanged) is rendered by helm 3 and 4 with an
operator's own values and lockstep's overlay; every document is validated strictly; z2jh's
own ``jupyterhub_config.py`` is loaded from the rendered ConfigMap with the rendered values
Secret at the paths its ``z2jh.py`` reads; and a lockstep server is started from that
config against the fake API under z2jh's hub Role.
"""

from __future__ import annotations

import asyncio

import pytest
import yaml

from spawner.kube.hardening import HardeningRefused
from spawner.kube.spawner import LockstepKubeSpawner
from tests.k8s.hubload import matches_selector
from tests.k8s.k8s_helpers import (
    ROOT,
    by_kind,
    fake_image,
    find,
    make_spawner,
    validate_strictly,
)
from tests.k8s.kmock_api import NS, ApiServer, claims, pods
from tests.k8s.z2jh_hub import (
    OVERLAY,
    Z2JH,
    hub_deployment,
    load_z2jh_config,
    projects_configmap,
    render_z2jh,
)

pytestmark = [
    pytest.mark.kmock(cls=ApiServer),
    pytest.mark.skipif(not (Z2JH / "Chart.yaml").exists(),
                       reason=f"the z2jh chart is not at {Z2JH} (set LOCKSTEP_Z2JH_CHART)"),
]

# What an operator already has in their z2jh values: none of it may be lost.
SITE = {
    "scheduling": {"podPriority": {"enabled": True},
                   "userPods": {"nodeAffinity": {"matchNodePurpose": "require"}}},
    "singleuser": {
        "extraTolerations": [{"key": "dedicated", "operator": "Equal", "value": "ds",
                              "effect": "NoSchedule"}],
        "extraLabels": {"hub.jupyter.org/network-access-hub": "true",
                        "site.example.com/team": "ds"},
        "extraEnv": {"SITE_NAME": "example",
                     "DB_PASSWORD": {"valueFrom": {"secretKeyRef": {"name": "ds-db",
                                                                    "key": "password"}}}},
        "initContainers": [{
            "name": "site-init", "image": "registry.example.com/site/init:1.0",
            "command": ["sh", "-c", "true"],
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]}}}],
    },
}


@pytest.fixture
def site_values(tmp_path):
    path = tmp_path / "site-values.yaml"
    path.write_text(yaml.safe_dump(SITE))
    return path


def test_overlay_renders_valid_documents(helm, site_values):
    docs = render_z2jh(helm, site_values, OVERLAY)
    validate_strictly([*docs, projects_configmap(ROOT / "environments")])
    hub = hub_deployment(docs)["spec"]["template"]["spec"]
    (container,) = [c for c in hub["containers"] if c["name"] == "hub"]
    assert container["image"].split("@")[1].startswith("sha256:")  # run by digest
    mount = next(m for m in container["volumeMounts"] if m["name"] == "lockstep-projects")
    assert mount["mountPath"] == "/srv/lockstep/environments" and mount["readOnly"]
    # z2jh's Role already grants what lockstep does to claims: no extra RBAC
    rules = find(docs, "Role", "hub")["rules"]
    assert any("persistentvolumeclaims" in r["resources"] and {"create", "delete"} <=
               set(r["verbs"]) for r in rules)


def test_overlay_mounts_every_project(site_values):
    """A project added to environments/ but not to the overlay's items would be invisible."""
    overlay = yaml.safe_load(OVERLAY.read_text())
    (volume,) = [v for v in overlay["hub"]["extraVolumes"] if v["name"] == "lockstep-projects"]
    mapped = {i["key"]: i["path"] for i in volume["configMap"]["items"]}
    data = projects_configmap(ROOT / "environments")["data"]
    assert mapped == {k: f"{k.removesuffix('.project.yaml')}/project.yaml" for k in data}


def test_z2jh_config_selects_lockstep(helm3, site_values, tmp_path, monkeypatch):
    docs = render_z2jh(helm3, site_values, OVERLAY, namespace=NS)
    app = load_z2jh_config(docs, tmp_path, monkeypatch, namespace=NS,
                           extra=[projects_configmap(ROOT / "environments")])
    assert app.spawner_class is LockstepKubeSpawner  # "lockstep-kube", resolved
    assert app.config.KubeSpawner.scheduler_name == user_scheduler_name(docs)
    assert app.config.LockstepKubeSpawner.hardening_exceptions == ["init_containers"]
    assert sorted(p.parent.name for p in (tmp_path / "srv/lockstep/environments").glob(
        "*/project.yaml")) == sorted(p.parent.name for p in (ROOT / "environments").glob(
            "*/project.yaml"))


def test_metadata_block_is_refused_without_the_exception(helm3, site_values, tmp_path,
                                                         monkeypatch):
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump({"hub": {"extraConfig": {
        "lockstep-01-strict": "c.LockstepKubeSpawner.hardening_exceptions = []\n"}}}))
    docs = render_z2jh(helm3, site_values, OVERLAY, strict, namespace=NS)
    with pytest.raises(HardeningRefused) as info:
        load_z2jh_config(docs, tmp_path / "root", monkeypatch, namespace=NS,
                         extra=[projects_configmap(ROOT / "environments")])
    assert "init_containers" in str(info.value) and "NET_ADMIN" in str(info.value)


def user_scheduler_name(docs: list[dict]) -> str:
    """The scheduler name z2jh's user-scheduler serves (its KubeSchedulerConfiguration)."""
    config = yaml.safe_load(find(docs, "ConfigMap", "user-scheduler")["data"]["config.yaml"])
    (profile,) = config["profiles"]
    return profile["schedulerName"]


def _site_config(app, api, tmp_path):
    c = app.config
    root = tmp_path / "root"
    assert c.Lockstep.environments_dir == "/srv/lockstep/environments"
    assert c.Lockstep.data_dir.startswith("/srv/jupyterhub/")  # the hub-db claim
    c.Lockstep.environments_dir = str(root / "srv/lockstep/environments")  # the mount
    c.Lockstep.data_dir = str(root / c.Lockstep.data_dir.lstrip("/"))
    c.LockstepKubeSpawner.k8s_api_host = str(api.url).rstrip("/")  # in-cluster, faked
    c.LockstepKubeSpawner.start_timeout = 20
    c.LockstepKubeSpawner.k8s_api_request_retry_timeout = 10
    return c


async def test_server_keeps_z2jh_pod_settings(api, kubelet, site_values, tmp_path,
                                              monkeypatch, helm3):
    docs = render_z2jh(helm3, site_values, OVERLAY, namespace=NS)
    api.role_rules = find(docs, "Role", "hub")["rules"]  # z2jh's Role, not lockstep's
    app = load_z2jh_config(docs, tmp_path / "root", monkeypatch, namespace=NS,
                           extra=[projects_configmap(ROOT / "environments")])
    spawner = make_spawner(_site_config(app, api, tmp_path))
    spawner.user_options = {"project": "forecast", "stage": "qa"}
    await asyncio.wait_for(spawner.start(), 30)
    (pod,) = pods(api).values()
    spec, labels = pod["spec"], pod["metadata"]["labels"]
    notebook = spec["containers"][0]

    assert notebook["image"] == fake_image("forecast", "qa").reference  # the stage digest
    assert labels["org.lockstep.project"] == "forecast"
    assert {"component": "singleuser-server", "app": "jupyterhub", "release": "jhub",
            "app.kubernetes.io/managed-by": "kubespawner", "site.example.com/team": "ds",
            "hub.jupyter.org/network-access-hub": "true"}.items() <= labels.items()
    netpol = find(docs, "NetworkPolicy", "singleuser")
    assert matches_selector(netpol["spec"]["podSelector"], labels)

    assert spec["schedulerName"] == user_scheduler_name(docs)
    (priority,) = [p for p in by_kind(docs, "PriorityClass") if not p.get("globalDefault")
                   and p["metadata"]["name"].endswith("-default-priority")]
    assert spec["priorityClassName"] == priority["metadata"]["name"]
    for toleration in [*SITE["singleuser"]["extraTolerations"],
                       {"key": "hub.jupyter.org/dedicated", "operator": "Equal",
                        "value": "user", "effect": "NoSchedule"}]:
        assert toleration in spec["tolerations"]
    (term,) = spec["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"][0]["key"] == "hub.jupyter.org/node-purpose"
    assert [c["name"] for c in spec["initContainers"]] == ["site-init", "block-cloud-metadata"]
    block = spec["initContainers"][1]
    assert block["securityContext"]["capabilities"]["add"] == ["NET_ADMIN"]
    assert "169.254.169.254" in block["command"]
    env = {e["name"]: e for e in notebook["env"]}
    assert env["SITE_NAME"]["value"] == "example"
    assert env["DB_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "ds-db",
                                                                "key": "password"}}
    assert spec["securityContext"]["runAsNonRoot"] is True  # lockstep's hardening stays
    assert notebook["securityContext"]["capabilities"]["drop"] == ["ALL"]

    assert set(claims(api)) == {"lockstep-ws-forecast", "lockstep-home-forecast.alice"}
    assert not [n for n in claims(api) if n.startswith("claim-")]  # no z2jh home claim
    await asyncio.wait_for(spawner.stop(now=True), 30)
    assert pods(api) == {}

