"""KubeSpawner's own traits on LockstepKubeSpawner: honoured in the pod, or refused by name.

The golden pod ``golden/pod-traits.json`` shows every honoured trait; regenerate it after
an intended change with ``LOCKSTEP_UPDATE_GOLDEN=1`` and review the diff. Spawns run
against the fake API of ``tests.k8s.kmock_api`` (strict validation, the chart's Role).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest
from tornado import web
from traitlets.config import Config

from spawner.kube.hardening import HardeningRefused
from spawner.kube.spawner import check_config
from spawner.traitaudit import SettingRefused
from tests.k8s.k8s_helpers import ROOT, FakeStagesSpawner, fake_image, hub_user, make_spawner
from tests.k8s.kmock_api import KUBELET, NS, ApiServer, claims, config, pods, strict_errors

pytestmark = pytest.mark.kmock(cls=ApiServer)
GOLDEN = Path(__file__).parent / "golden"
SECRET_REF = {"secretKeyRef": {"name": "db", "key": "password"}}
TERM = {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["users"]}]}
POD_TERM = {"labelSelector": {"matchLabels": {"component": "singleuser-server"}},
            "topologyKey": "kubernetes.io/hostname"}


def honoured(c: Config) -> Config:
    """Every KubeSpawner pod trait lockstep honours, as a z2jh-like site sets them."""
    k = c.KubeSpawner
    k.tolerations = [{"key": "hub.jupyter.org/dedicated", "operator": "Equal",
                      "value": "user", "effect": "NoSchedule"}]
    k.node_selector = {"pool": "users"}
    k.node_affinity_required = [TERM]
    k.node_affinity_preferred = [{"weight": 10, "preference": TERM}]
    k.pod_affinity_required = [POD_TERM]
    k.pod_affinity_preferred = [{"weight": 5, "podAffinityTerm": POD_TERM}]
    k.pod_anti_affinity_required = [POD_TERM]
    k.pod_anti_affinity_preferred = [{"weight": 1, "podAffinityTerm": POD_TERM}]
    k.scheduler_name = "r-user-scheduler"
    k.priority_class_name = "r-default-priority"
    k.service_account = "notebook"
    k.extra_pod_config = {"dns_policy": "ClusterFirst", "terminationGracePeriodSeconds": 30}
    k.extra_container_config = {"env": [{"name": "EXTRA", "value": "1"}],
                                "securityContext": {"seLinuxOptions": {"level": "s0:c1"}}}
    k.init_containers = [{"name": "fetch", "image": "busybox:1.36",
                          "command": ["true"], "securityContext": {"runAsUser": 1000}}]
    k.extra_containers = [{"name": "sidecar", "image": "busybox:1.36"}]
    k.volumes = {"b-shared": {"name": "shared", "configMap": {"name": "shared"}}}
    k.volume_mounts = [{"name": "shared", "mount_path": "/etc/shared", "readOnly": True}]
    k.lifecycle_hooks = {"postStart": {"exec": {"command": ["sh", "-c", "true"]}}}
    k.extra_resource_limits = {"example.com/dongle": "1", "memory": "999Gi"}
    k.extra_resource_guarantees = {"example.com/dongle": "1"}
    k.extra_labels = {"hub.jupyter.org/network-access-hub": "true"}
    k.extra_annotations = {"example.com/owner": "{username}"}
    k.image_pull_secrets = ["r-image-pull-secret"]
    k.environment = {"DB_PASSWORD": {"valueFrom": SECRET_REF}, "PLAIN": "yes"}
    k.uid, k.gid, k.fs_gid, k.supplemental_gids = 1000, 100, 100, [100]
    k.working_dir = "/workspace"
    # Spawner limits and guarantees against forecast's 1 CPU and 1G: the smaller CPU limit
    # is the site's; the memory request is the site's guarantee, as the project asks for less
    k.cpu_limit, k.mem_limit, k.cpu_guarantee, k.mem_guarantee = 0.5, "2G", 0.25, "512M"
    c.LockstepKubeSpawner.memory_request_fraction = 0.25
    return c


def plain_config(tmp_path) -> Config:
    c = Config()
    c.Lockstep.environments_dir = str(ROOT / "environments")
    c.Lockstep.data_dir = str(tmp_path / "state")
    c.LockstepKubeSpawner.namespace = NS
    c.LockstepKubeSpawner.data_volumes = {"forecast/sales": {"pvc": "forecast-sales"}}
    return c


async def manifest(spawner, options) -> dict:
    spawner.user_options = options
    pod = await spawner.get_pod_manifest()
    return spawner.api.api_client.sanitize_for_serialization(pod)


async def test_every_honoured_trait_in_the_golden_pod(tmp_path):
    spawner = make_spawner(honoured(plain_config(tmp_path)), internal_ssl=True)
    pod = await manifest(spawner, {"project": "forecast", "stage": "prod"})
    path = GOLDEN / "pod-traits.json"
    if os.environ.get("LOCKSTEP_UPDATE_GOLDEN"):
        path.write_text(json.dumps(pod, indent=2, sort_keys=True) + "\n")
    assert pod == json.loads(path.read_text()), "pod-traits.json differs from golden"
    assert strict_errors(pod) == []
    spec, (notebook, sidecar) = pod["spec"], pod["spec"]["containers"]
    assert spec["tolerations"][0]["key"] == "hub.jupyter.org/dedicated"
    assert spec["nodeSelector"] == {"pool": "users"}
    assert set(spec["affinity"]) == {"nodeAffinity", "podAffinity", "podAntiAffinity"}
    assert (spec["schedulerName"], spec["priorityClassName"]) == (
        "r-user-scheduler", "r-default-priority")
    assert spec["serviceAccountName"] == "notebook"
    assert spec["automountServiceAccountToken"] is False  # lockstep's default stays
    assert (spec["dnsPolicy"], spec["terminationGracePeriodSeconds"]) == ("ClusterFirst", 30)
    assert [c["name"] for c in spec["initContainers"]] == ["fetch"]
    assert sidecar["name"] == "sidecar"
    assert {"name": "shared", "configMap": {"name": "shared"}} in spec["volumes"]
    assert {"name": "jupyterhub-internal-certs", "mountPath": "/etc/jupyterhub/ssl/",
            "readOnly": True} in notebook["volumeMounts"]
    assert {"name": "shared", "mountPath": "/etc/shared", "readOnly": True} in \
        notebook["volumeMounts"]
    assert notebook["lifecycle"]["postStart"]["exec"]["command"] == ["sh", "-c", "true"]
    limits, requests = notebook["resources"]["limits"], notebook["resources"]["requests"]
    assert limits["example.com/dongle"] == "1" and limits["memory"] != "999Gi"  # project wins
    assert (limits["cpu"], limits["memory"]) == ("500m", "1000000000")  # the smaller each
    assert (requests["cpu"], requests["memory"]) == ("500m", str(512 * 2**20))
    assert notebook["workingDir"] == "/workspace"
    assert pod["metadata"]["labels"]["hub.jupyter.org/network-access-hub"] == "true"
    assert pod["metadata"]["annotations"]["example.com/owner"] == "alice"
    assert spec["imagePullSecrets"] == [{"name": "r-image-pull-secret"}]
    env = {e["name"]: e for e in notebook["env"]}
    assert env["DB_PASSWORD"] == {"name": "DB_PASSWORD", "valueFrom": SECRET_REF}
    assert env["PLAIN"] == {"name": "PLAIN", "value": "yes"} and env["EXTRA"]["value"] == "1"
    assert env["JUPYTERHUB_SSL_KEYFILE"]["value"] == "/etc/jupyterhub/ssl/ssl.key"
    assert notebook["securityContext"]["seLinuxOptions"] == {"level": "s0:c1"}
    assert notebook["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["supplementalGroups"] == [100]
    assert notebook["image"] == fake_image("forecast", "prod").reference


WEAKENING = [
    ("privileged", True),
    ("allow_privilege_escalation", True),
    ("uid", 0),
    ("automount_service_account_token", True),
    ("container_security_context", {"capabilities": {"add": ["SYS_ADMIN"]}}),
    ("pod_security_context", {"runAsNonRoot": False}),
    ("extra_container_config", {"securityContext": {"capabilities": {"add": ["NET_RAW"]}}}),
    ("extra_container_config", {"security_context": {"privileged": True}}),
    ("extra_pod_config", {"hostNetwork": True}),
    ("extra_pod_config", {"host_pid": True}),
    ("extra_pod_config", {"hostIPC": True}),
    ("extra_pod_config", {"automountServiceAccountToken": True}),
    ("volumes", [{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}]),
    ("init_containers", [{"name": "block", "image": "busybox",
                          "securityContext": {"runAsUser": 0, "privileged": True}}]),
    ("extra_containers", [{"name": "dind", "image": "docker:dind",
                           "securityContext": {"privileged": True}}]),
]


@pytest.mark.parametrize("trait,value", WEAKENING, ids=[f"{t}-{i}" for i, (t, _) in
                                                        enumerate(WEAKENING)])
async def test_a_weakening_trait_stops_startup_with_its_name(tmp_path, trait, value):
    c = plain_config(tmp_path)
    setattr(c.KubeSpawner, trait, value)
    with pytest.raises(HardeningRefused) as info:
        check_config(c)  # what the hub config runs last, at hub start
    assert f"c.KubeSpawner.{trait}" in str(info.value)
    assert f"hardening_exceptions = [{trait!r}]" in str(info.value)
    with pytest.raises(HardeningRefused, match=trait):
        make_spawner(c)  # and no spawner of this site can be made either

    c.LockstepKubeSpawner.hardening_exceptions = [trait]  # the explicit override
    check_config(c)
    assert make_spawner(c).hardening_exceptions == [trait]


async def test_a_refused_setting_stops_the_spawner_and_a_profile_cannot_set_it(api, tmp_path):
    c = config(api, tmp_path)
    c.KubeSpawner.enable_user_namespaces = True
    with pytest.raises(SettingRefused, match=r"c\.KubeSpawner\.enable_user_namespaces = True"):
        make_spawner(c)
    c = config(api, tmp_path)
    c.KubeSpawner.profile_list = [{"display_name": "Own ns", "slug": "ns", "kubespawner_override":
                                   {"enable_user_namespaces": True}}]
    spawner = make_spawner(c)
    spawner.user_options = {"project": "sandbox", "profile": "ns"}
    with pytest.raises(web.HTTPError) as info:
        await asyncio.wait_for(spawner.start(), 30)
    assert info.value.status_code == 500
    assert "enable_user_namespaces" in str(info.value.log_message or info.value)
    assert pods(api) == {} and claims(api) == {}  # refused before anything was created


async def test_hardening_exceptions_names_only_known_traits(tmp_path):
    c = plain_config(tmp_path)
    c.LockstepKubeSpawner.hardening_exceptions = ["privilegd"]
    with pytest.raises(Exception, match="unknown trait.*privilegd"):
        make_spawner(c)


def hub_dir(tmp_path: Path) -> Path:
    (tmp_path / "hub").mkdir()
    return tmp_path / "hub"


def test_the_chart_hub_refuses_a_weakening_trait_at_start(tmp_path, helm3):
    import yaml

    from tests.k8s.hubload import load_hub

    docs_values = tmp_path / "values.yaml"
    merged = yaml.safe_load((ROOT / "helm/lockstep/examples/default.yaml").read_text()) or {}
    merged.setdefault("hub", {}).setdefault("config", {})["KubeSpawner"] = {"privileged": True}
    docs_values.write_text(yaml.safe_dump(merged))
    with pytest.raises(HardeningRefused, match=r"c\.KubeSpawner\.privileged"):
        load_hub(hub_dir(tmp_path), docs_values, helm3)


async def test_value_from_env_is_a_strictly_valid_pod(api, kubelet, tmp_path):
    c = config(api, tmp_path)
    c.KubeSpawner.environment = {"DB_PASSWORD": {"valueFrom": SECRET_REF}}
    spawner = make_spawner(c)
    spawner.user_options = {"project": "sandbox"}
    await asyncio.wait_for(spawner.start(), 30)  # the API validated the pod strictly
    (pod,) = pods(api).values()
    env = pod["spec"]["containers"][0]["env"]
    assert {"name": "DB_PASSWORD", "valueFrom": SECRET_REF} in env
    await asyncio.wait_for(spawner.stop(now=True), 30)


def named(server: str) -> type:
    class Named(FakeStagesSpawner):
        name = server  # JupyterHub reads it from the server's database row

    return Named


async def test_two_named_servers_get_two_homes(api, kubelet, tmp_path):
    user = hub_user("alice")
    started = []
    for name in ("", "first", "second"):
        spawner = make_spawner(config(api, tmp_path), user=user, cls=named(name))
        spawner.user_options = {"project": "sandbox"}
        await asyncio.wait_for(spawner.start(), 30)
        started.append(spawner)
    homes = sorted(n for n in claims(api) if n.startswith("lockstep-home-"))
    assert homes == ["lockstep-home-sandbox.alice", "lockstep-home-sandbox.alice.first",
                     "lockstep-home-sandbox.alice.second"]
    claim_of = {p["metadata"]["name"]: next(
        v["persistentVolumeClaim"]["claimName"] for v in p["spec"]["volumes"]
        if v["name"] == "home") for p in pods(api).values()}
    assert len(set(claim_of.values())) == 3
    for spawner in started:
        await asyncio.wait_for(spawner.stop(now=True), 30)


async def test_a_profile_keeps_the_digest_and_loads_once(api, kubelet, tmp_path):
    class Counting(FakeStagesSpawner):
        loads = 0

        async def load_user_options(self):
            if not self._options_loaded:
                type(self).loads += 1
            await super().load_user_options()

    c = config(api, tmp_path)
    c.KubeSpawner.profile_list = [
        {"display_name": "Small", "slug": "small", "default": True},
        {"display_name": "Big nodes", "slug": "big", "kubespawner_override": {
            "image": "quay.io/jupyter/scipy-notebook:latest", "node_selector": {"pool": "big"}}},
    ]
    spawner = make_spawner(c, cls=Counting)
    spawner.user_options = {"project": "forecast", "stage": "qa", "profile": "big"}
    await asyncio.wait_for(spawner.start(), 30)
    (pod,) = pods(api).values()
    assert pod["spec"]["containers"][0]["image"] == fake_image("forecast", "qa").reference
    assert pod["spec"]["nodeSelector"] == {"pool": "big"}  # the profile's override applies
    assert spawner.image == fake_image("forecast", "qa").reference
    assert Counting.loads == 1
    await asyncio.wait_for(spawner.stop(now=True), 30)


async def test_a_profile_cannot_weaken_the_pod(api, tmp_path):
    c = config(api, tmp_path)
    c.KubeSpawner.profile_list = [{"display_name": "Root", "slug": "root",
                                   "kubespawner_override": {"privileged": True}}]
    spawner = make_spawner(c)
    spawner.user_options = {"project": "sandbox", "profile": "root"}
    with pytest.raises(web.HTTPError) as info:
        await asyncio.wait_for(spawner.start(), 30)
    assert "c.KubeSpawner.privileged" in str(info.value.log_message or info.value)
    assert pods(api) == {}


async def test_modify_pod_hook_may_add_but_not_weaken(api, kubelet, tmp_path):
    def label(spawner, pod):
        pod.metadata.labels["example.com/hooked"] = "yes"
        return pod

    def root(spawner, pod):
        pod.spec.host_network = True
        return pod

    c = config(api, tmp_path)
    c.KubeSpawner.modify_pod_hook = label
    spawner = make_spawner(c)
    spawner.user_options = {"project": "sandbox"}
    await asyncio.wait_for(spawner.start(), 30)
    (pod,) = pods(api).values()
    assert pod["metadata"]["labels"]["example.com/hooked"] == "yes"
    await asyncio.wait_for(spawner.stop(now=True), 30)

    c.KubeSpawner.modify_pod_hook = root
    spawner = make_spawner(c)
    spawner.user_options = {"project": "sandbox"}
    with pytest.raises(web.HTTPError) as info:
        await asyncio.wait_for(spawner.start(), 30)
    assert "modify_pod_hook" in str(info.value.log_message or info.value)
    assert "hostNetwork" in str(info.value.log_message or info.value)
    assert pods(api) == {}


@pytest.fixture
def environments(tmp_path) -> Path:
    """The example projects plus one whose project.yaml does not load."""
    root = tmp_path / "environments"
    shutil.copytree(ROOT / "environments", root)
    (root / "broken").mkdir()
    (root / "broken" / "project.yaml").write_text("name: broken\nresources: [oops\n")
    return root


async def test_an_invalid_project_leaves_the_others_working(api, kubelet, tmp_path,
                                                             environments):
    c = config(api, tmp_path, environments=str(environments))
    admin = make_spawner(c, user=hub_user("root", admin=True))
    form = await admin.get_options_form()
    assert "forecast" in form and "broken" in form  # admins see the error on the form
    user = make_spawner(c, user=hub_user("carol"))
    form = await user.get_options_form()
    assert "vision/dev" in form and "broken" not in form

    user.user_options = {"project": "vision"}
    await asyncio.wait_for(user.start(), 30)
    assert len(pods(api)) == 1
    await asyncio.wait_for(user.stop(now=True), 30)
    user.user_options = {"project": "broken"}
    with pytest.raises(web.HTTPError) as info:
        await asyncio.wait_for(user.start(), 30)
    assert info.value.status_code == 404


async def test_the_fake_api_refuses_what_the_role_does_not_grant(api):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    resp = await api.request("POST", f"/api/v1/namespaces/{NS}/pods", json=pod,
                             headers=KUBELET)
    assert resp.status in (200, 201), await resp.text()
    resp = await api.request("PATCH", f"/api/v1/namespaces/{NS}/pods/p", json={})
    assert resp.status == 403  # the hub Role has no patch on pods
    bad = {**pod, "metadata": {"name": "q"}, "spec": {"containers": [{"name": "c"}],
                                                      "nope": 1}}
    resp = await api.request("POST", f"/api/v1/namespaces/{NS}/pods", json=bad)
    assert resp.status == 422  # not strictly valid
    assert len(api.violations) == 2
    api.violations.clear()  # seen; the fixture would fail the test otherwise

