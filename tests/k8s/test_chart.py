"""The Helm chart: lint, render with helm 3 and 4, validate every document strictly for the
oldest and newest Kubernetes we support, and check what the chart promises."""

from __future__ import annotations

import base64
import ipaddress
import json
import subprocess
import sys

import pytest
import yaml

from tests.k8s.k8s_helpers import (
    CHART,
    EXAMPLES,
    ROOT,
    by_kind,
    find,
    helm_template,
    validate_strictly,
)

METADATA_IP = ipaddress.ip_address("169.254.169.254")
EXAMPLE_IDS = [p.stem for p in EXAMPLES]


def test_examples_exist():
    assert {p.stem for p in EXAMPLES} >= {"default", "gpu", "gvisor", "external-db"}


@pytest.mark.parametrize("values", EXAMPLES, ids=EXAMPLE_IDS)
def test_lint_strict(helm, values):
    proc = subprocess.run([helm, "lint", "--strict", str(CHART), "-f", str(values)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("values", EXAMPLES, ids=EXAMPLE_IDS)
def test_every_document_validates_strictly(helm, values):
    docs = helm_template(helm, values)
    assert {"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "Secret",
            "ConfigMap", "NetworkPolicy"} <= {d["kind"] for d in docs}
    validate_strictly(docs)


def test_missing_hub_digest_is_refused_with_the_fix(helm3, tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text("hub: {image: {repository: r.example.com/hub}}\n")
    proc = subprocess.run([helm3, "template", "r", str(CHART), "-f", str(values)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "hub.image.digest is required" in proc.stderr
    values.write_text("hub: {image: {repository: r.example.com/hub, digest: latest}}\n")
    proc = subprocess.run([helm3, "template", "r", str(CHART), "-f", str(values)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "digest" in proc.stderr  # the schema's pattern


def _walk(schema: dict, path: str):
    yield path, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from _walk(sub, f"{path}.{name}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        yield from _walk(extra, f"{path}.*")
    if isinstance(schema.get("items"), dict):
        yield from _walk(schema["items"], f"{path}[]")


def test_every_schema_property_has_a_description():
    schema = json.loads((CHART / "values.schema.json").read_text())
    missing = [path for path, sub in _walk(schema, "values") if not sub.get("description")]
    assert not missing, f"schema properties without a description: {missing}"


def test_every_value_is_in_the_schema():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def check(value, sub, path):
        assert "description" in sub, path
        if isinstance(value, dict) and "properties" in sub:
            for key, inner in value.items():
                assert key in sub["properties"], f"{path}.{key} missing from the schema"
                check(inner, sub["properties"][key], f"{path}.{key}")

    check(values, schema, "values")


def test_hub_image_by_digest_and_hardened(helm3):
    docs = helm_template(helm3, CHART / "examples" / "default.yaml")
    hub = find(docs, "Deployment", "-hub")
    (container,) = hub["spec"]["template"]["spec"]["containers"]
    example = yaml.safe_load((CHART / "examples" / "default.yaml").read_text())
    assert container["image"] == (f"{example['hub']['image']['repository']}@"
                                  f"{example['hub']['image']['digest']}")
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    for deploy in by_kind(docs, "Deployment"):
        for c in deploy["spec"]["template"]["spec"]["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert not c["securityContext"].get("privileged")


def test_rbac_is_namespaced_and_minimal(helm3):
    docs = helm_template(helm3, CHART / "examples" / "default.yaml")
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")
    role = find(docs, "Role", "-hub")
    rules = {r["resources"][0]: set(r["verbs"]) for r in role["rules"]}
    assert rules == {
        "pods": {"get", "list", "watch", "create", "delete"},
        "persistentvolumeclaims": {"get", "list", "create", "delete"},  # user removal
        "events": {"get", "list", "watch"},
    }
    binding = find(docs, "RoleBinding", "-hub")
    sa = find(docs, "ServiceAccount", "-hub")
    assert binding["subjects"][0]["name"] == sa["metadata"]["name"]
    hub = find(docs, "Deployment", "-hub")
    assert hub["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_secrets_generated_and_kept(helm3):
    a = find(helm_template(helm3, CHART / "examples" / "default.yaml"), "Secret", "-secret")
    b = find(helm_template(helm3, CHART / "examples" / "default.yaml"), "Secret", "-secret")
    assert a["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    for key in ("proxy-token", "cookie-secret", "crypt-key"):
        value = base64.b64decode(a["data"][key]).decode()
        assert len(value) == 64
        # helm template has no cluster, so lookup finds nothing and each render is fresh;
        # on upgrade lookup returns the live Secret and these values are reused.
        assert a["data"][key] != b["data"][key]
    for key in ("cookie-secret", "crypt-key"):
        bytes.fromhex(base64.b64decode(a["data"][key]).decode())  # JupyterHub wants hex
    template = (CHART / "templates" / "_helpers.tpl").read_text()
    assert 'lookup "v1" "Secret"' in template


def test_sqlite_pvc_by_default_external_db_from_secret(helm3):
    docs = helm_template(helm3, CHART / "examples" / "default.yaml")
    assert find(docs, "PersistentVolumeClaim", "-hub-db")
    env = {e["name"]: e for e in find(docs, "Deployment", "-hub")["spec"]["template"]["spec"]
           ["containers"][0]["env"]}
    assert "LOCKSTEP_DB_URL" not in env
    docs = helm_template(helm3, CHART / "examples" / "external-db.yaml")
    # no database claim; the session log keeps a claim of its own (never an emptyDir)
    assert [c["metadata"]["name"] for c in by_kind(docs, "PersistentVolumeClaim")] == [
        "r-lockstep-hub-state"]
    env = {e["name"]: e for e in find(docs, "Deployment", "-hub")["spec"]["template"]["spec"]
           ["containers"][0]["env"]}
    assert env["LOCKSTEP_DB_URL"]["valueFrom"]["secretKeyRef"] == {"name": "lockstep-db",
                                                                  "key": "url"}
    docs = helm_template(helm3, CHART / "examples" / "default.yaml", "--set",
                         "hub.db.type=external", "--set", "hub.db.url=postgresql://h/db")
    secret = find(docs, "Secret", "-secret")
    assert base64.b64decode(secret["data"]["db-url"]).decode() == "postgresql://h/db"


def test_projects_configmap_matches_environments(helm3):
    docs = helm_template(helm3, CHART / "examples" / "default.yaml")
    cm = find(docs, "ConfigMap", "-projects")
    for path in sorted((ROOT / "environments").glob("*/project.yaml")):
        assert cm["data"][f"{path.parent.name}.project.yaml"] == path.read_text()
    hub = find(docs, "Deployment", "-hub")
    vol = next(v for v in hub["spec"]["template"]["spec"]["volumes"] if v["name"] == "projects")
    assert {i["path"] for i in vol["configMap"]["items"]} == {
        f"{p.parent.name}/project.yaml" for p in (ROOT / "environments").glob("*/project.yaml")}


def test_projects_value_overrides_chart_copy(helm3):
    docs = helm_template(helm3, CHART / "examples" / "external-db.yaml")
    cm = find(docs, "ConfigMap", "-projects")
    assert "dave" in cm["data"]["sandbox.project.yaml"]
    assert "forecast.project.yaml" in cm["data"]


def test_chart_project_copies_are_in_sync():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "sync-chart-projects"),
                           "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_sync_script_copies_and_prunes(tmp_path):
    env, chart = tmp_path / "environments", tmp_path / "chart"
    (env / "demo").mkdir(parents=True)
    (env / "demo" / "project.yaml").write_text("name: demo\n")
    (chart / "projects" / "gone").mkdir(parents=True)
    script = [sys.executable, str(ROOT / "scripts" / "sync-chart-projects"),
              "--environments", str(env), "--chart", str(chart)]
    assert subprocess.run([*script, "--check"], capture_output=True).returncode == 1
    assert subprocess.run(script, capture_output=True).returncode == 0
    assert (chart / "projects" / "demo" / "project.yaml").read_text() == "name: demo\n"
    assert not (chart / "projects" / "gone").exists()
    assert subprocess.run([*script, "--check"], capture_output=True).returncode == 0
    (env / "demo" / "project.yaml").write_text("name: wrong\n")
    proc = subprocess.run(script, capture_output=True, text=True)
    assert proc.returncode == 2 and "folder is 'demo'" in proc.stderr


def _ip_blocks(policy: dict):
    for rule in policy["spec"].get("egress", []) + policy["spec"].get("ingress", []):
        for peer in rule.get("to", []) + rule.get("from", []):
            if "ipBlock" in peer:
                yield peer["ipBlock"], rule.get("ports", [])


@pytest.mark.parametrize("values", EXAMPLES, ids=EXAMPLE_IDS)
def test_cloud_metadata_is_never_reachable(helm3, values):
    for policy in by_kind(helm_template(helm3, values), "NetworkPolicy"):
        for block, ports in _ip_blocks(policy):
            if METADATA_IP in ipaddress.ip_network(block["cidr"]):
                if ports and all(p["port"] == 53 for p in ports):
                    continue  # the cloud's DNS resolver, port 53 only (dnsEgress)
                excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
                assert any(METADATA_IP in e for e in excepted), (policy["metadata"]["name"], block)


def test_link_local_project_cidr_is_refused(helm3):
    proc = subprocess.run(
        [helm3, "template", "r", str(CHART), "-f", str(CHART / "examples" / "default.yaml"),
         "--set", "singleuser.networkPolicy.projectEgress.forecast.cidrs={169.254.0.0/16}"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "link-local" in proc.stderr


def test_user_pods_only_reached_by_hub_and_proxy(helm3):
    docs = helm_template(helm3, CHART / "examples" / "gpu.yaml")
    base = find(docs, "NetworkPolicy", "-singleuser")
    assert set(base["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    (rule,) = base["spec"]["ingress"]
    components = sorted(p["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                        for p in rule["from"])
    assert components == ["hub", "proxy"]
    assert all(set(p) == {"podSelector"} for p in rule["from"])  # no namespace/ipBlock peers
    for policy in by_kind(docs, "NetworkPolicy"):
        if policy["metadata"]["name"].endswith(("-hub", "-proxy", "-singleuser")):
            continue
        assert policy["spec"]["policyTypes"] == ["Egress"], "per-project policies add egress only"
    vision = find(docs, "NetworkPolicy", "-egress-vision")
    assert vision["spec"]["podSelector"]["matchLabels"] == {
        "org.lockstep.managed": "true", "org.lockstep.project": "vision"}


def test_image_pull_secrets_reach_pods_and_spawner(helm3):
    docs = helm_template(helm3, CHART / "examples" / "gpu.yaml")
    assert find(docs, "Secret", "-registry")["type"] == "kubernetes.io/dockerconfigjson"
    for deploy in by_kind(docs, "Deployment"):
        assert deploy["spec"]["template"]["spec"]["imagePullSecrets"] == [
            {"name": "r-lockstep-registry"}]
    values = json.loads(find(docs, "ConfigMap", "-hub")["data"]["values.json"])
    assert values["imagePullSecrets"] == [{"name": "r-lockstep-registry"}]
