"""The hub config the chart renders: it loads in JupyterHub, picks LockstepKubeSpawner, and
yields for every example project a strictly valid, hardened pod whose labels the chart's
NetworkPolicies select."""

from __future__ import annotations

import json
import sys
import tomllib

import kubernetes_validate
import pytest
import yaml

from spawner.kube.spawner import LockstepKubeSpawner
from tests.k8s.hubload import load_hub, matches_selector
from tests.k8s.k8s_helpers import (
    CHART,
    EXAMPLES,
    K8S_VERSIONS,
    PROJECTS,
    ROOT,
    by_kind,
    fake_image,
    find,
    helm_template,
    hub_user,
    make_spawner,
)

EXAMPLE_IDS = [p.stem for p in EXAMPLES]


@pytest.fixture(scope="session")
def entry_points_installed(tmp_path_factory):
    """Make the ``jupyterhub.spawners`` entry points of pyproject.toml visible, as
    ``pip install`` would, when this checkout is not installed (no change to the venv)."""
    from importlib.metadata import entry_points

    if any(e.name == "lockstep-kube" for e in entry_points(group="jupyterhub.spawners")):
        yield
        return
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    site = tmp_path_factory.mktemp("site")
    info = site / "lockstep_checkout-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lockstep-checkout\n"
                                   "Version: 0.0.0\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
        for group, eps in table.items()))
    sys.path.append(str(site))
    yield
    sys.path.remove(str(site))


async def pod_for(app, project: str) -> dict:
    spawner = make_spawner(app.config, user=hub_user("admin", admin=True))
    spawner.user_options = {"project": project, "stage": "prod"}
    pod = await spawner.get_pod_manifest()
    return spawner.api.api_client.sanitize_for_serialization(pod)


@pytest.mark.parametrize("values", EXAMPLES, ids=EXAMPLE_IDS)
async def test_hub_config_loads_and_yields_valid_pods(helm3, values, tmp_path,
                                                       entry_points_installed):
    app, _ = load_hub(tmp_path, values, helm3)
    assert app.spawner_class is LockstepKubeSpawner
    assert app.config.ConfigurableHTTPProxy.should_start is False
    assert app.config.JupyterHub.hub_connect_url == "http://r-lockstep-hub:8081"
    site = yaml.safe_load(values.read_text())
    for name in PROJECTS:
        pod = await pod_for(app, name)
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(pod, version, strict=True)
        (container,) = pod["spec"]["containers"]
        assert container["image"] == fake_image(name, "prod").reference
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert pod["spec"]["securityContext"]["runAsUser"] == 1000
        project = PROJECTS[name]
        for mount in project.data:
            vm = next(m for m in container["volumeMounts"] if m["mountPath"] == mount.target)
            assert vm["readOnly"] is True
            vol = next(v for v in pod["spec"]["volumes"] if v["name"] == vm["name"])
            source = vol.get("persistentVolumeClaim") or vol.get("nfs")
            assert source["readOnly"] is True
        if project.gpu:
            assert container["resources"]["limits"]["nvidia.com/gpu"] == str(project.gpu.count)
        runtimes = site.get("singleuser", {}).get("runtimeClasses", {"gvisor": "gvisor"})
        if project.isolation != "runc":
            assert pod["spec"]["runtimeClassName"] == runtimes[project.isolation]
        else:
            assert "runtimeClassName" not in pod["spec"]


async def test_gpu_example_places_gpu_pods(helm3, tmp_path, entry_points_installed):
    app, _ = load_hub(tmp_path, CHART / "examples" / "gpu.yaml", helm3)
    pod = await pod_for(app, "vision")
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "dedicated", "operator": "Equal", "value": "gpu",
            "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    assert pod["spec"]["imagePullSecrets"] == [{"name": "r-lockstep-registry"}]
    forecast = await pod_for(app, "forecast")
    sales = next(v for v in forecast["spec"]["volumes"] if v["name"] == "data-sales")
    assert sales["nfs"] == {"server": "nfs.internal.example.com", "path": "/exports/sales",
                            "readOnly": True}


async def test_gvisor_example_uses_emptydir_homes(helm3, tmp_path, entry_points_installed):
    app, _ = load_hub(tmp_path, CHART / "examples" / "gvisor.yaml", helm3)
    pod = await pod_for(app, "sandbox")
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols["home"] == {"name": "home", "emptyDir": {}}
    assert vols["tmp0"]["emptyDir"]["medium"] == "Memory"


@pytest.mark.parametrize("values", EXAMPLES, ids=EXAMPLE_IDS)
async def test_network_policy_selectors_match_spawned_pods(helm3, values, tmp_path,
                                                            entry_points_installed):
    """Fails when the labels NetworkPolicies select on drift from what the spawner sets."""
    app, docs = load_hub(tmp_path, values, helm3)
    pods = {name: (await pod_for(app, name))["metadata"]["labels"] for name in PROJECTS}
    policies = {p["metadata"]["name"]: p for p in by_kind(docs, "NetworkPolicy")}
    base = policies["r-lockstep-singleuser"]["spec"]["podSelector"]
    for name, labels in pods.items():
        assert matches_selector(base, labels), f"{name}: {labels} not selected by {base}"
    for policy_name, policy in policies.items():
        if not policy_name.startswith("r-lockstep-egress-"):
            continue
        project = policy_name.removeprefix("r-lockstep-egress-")
        selected = {n for n, labels in pods.items()
                    if matches_selector(policy["spec"]["podSelector"], labels)}
        assert selected == ({project} & set(pods)), policy_name
    # peers that name user pods select them too (hub and proxy reach servers)
    for policy in policies.values():
        for rule in policy["spec"].get("egress", []) + policy["spec"].get("ingress", []):
            for peer in rule.get("to", []) + rule.get("from", []):
                sel = peer.get("podSelector", {}).get("matchLabels", {})
                if any(k.startswith("org.lockstep.") for k in sel):
                    assert all(matches_selector(peer["podSelector"], labels)
                               for labels in pods.values())
    # and the hub/proxy selectors match the chart's own pods
    for component in ("hub", "proxy"):
        labels = find(docs, "Deployment", f"-{component}")["spec"]["template"]["metadata"]["labels"]
        chosen = [p for p in policies.values()
                  if p["spec"]["podSelector"].get("matchLabels", {}).get(
                      "app.kubernetes.io/component") == component]
        assert chosen and all(matches_selector(p["spec"]["podSelector"], labels) for p in chosen)


def test_values_json_is_what_the_config_reads(helm3):
    docs = helm_template(helm3, CHART / "examples" / "external-db.yaml")
    values = json.loads(find(docs, "ConfigMap", "-hub")["data"]["values.json"])
    assert values["lockstep"]["stageRegistries"] == {"prod": "prod-registry.example.com/lockstep"}
    assert values["names"] == {"hub": "r-lockstep-hub", "proxyApi": "r-lockstep-proxy-api"}


@pytest.mark.parametrize("values", EXAMPLES, ids=EXAMPLE_IDS)
def test_login_is_never_open(helm3, values, tmp_path, monkeypatch):
    """Every example logs in through OpenID Connect (GenericOAuthenticator), the client
    secret handed to the hub from a Secret; no shared password exists anywhere. Logging in
    against a provider: tests/k8s/test_chart_auth.py."""
    from oauthenticator.generic import GenericOAuthenticator

    docs = helm_template(helm3, values)
    assert not {"user-password", "admin-password"} & set(find(docs, "Secret", "-secret")["data"])
    env = find(docs, "Deployment", "-hub")["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env
            if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs["OAUTH_CLIENT_SECRET"] == {"name": "lockstep-oauth", "key": "client-secret"}
    assert not {"LOCKSTEP_USER_PASSWORD", "LOCKSTEP_ADMIN_PASSWORD"} & set(refs)
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", "from-the-secret")
    app, _ = load_hub(tmp_path, values, helm3)
    assert app.config.JupyterHub.authenticator_class == "generic-oauth"
    auth = GenericOAuthenticator(config=app.config)
    assert auth.client_secret == "from-the-secret" and auth.client_id == "lockstep-hub"
    assert auth.authorize_url.startswith("https://") and auth.token_url.startswith("https://")
    assert "SharedPasswordAuthenticator" not in app.config
