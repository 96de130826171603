"""The chart starts the lockstep service in the hub pod and hands it the registry write
credential (``lockstepService.registryCredential``): the Secret is mounted read-only in the
hub container and named to the service process alone (``DOCKER_CONFIG`` in its service
entry); no user pod, model service, pull-secret list or Role reaches it. Values are
checked by the schema; objects validate strictly on the oldest and newest Kubernetes the
chart supports; the hub config the chart renders is loaded as the hub pod loads it."""

from __future__ import annotations

import json
import subprocess

import yaml

from tests.k8s.hubload import load_hub
from tests.k8s.k8s_helpers import (
    CHART,
    by_kind,
    find,
    helm_template,
    hub_user,
    make_spawner,
    validate_strictly,
)

DEFAULT = CHART / "examples" / "default.yaml"
WRITE_SECRET = "lockstep-registry-write"
MOUNT = "/etc/lockstep/service-registry"


def with_credential(tmp_path, **credential) -> object:
    values = yaml.safe_load(DEFAULT.read_text())
    values["lockstepService"] = {
        "enabled": True,
        "port": 10101,
        "registryCredential": {
            "existingSecret": {"name": WRITE_SECRET, "key": ".dockerconfigjson", **credential}
        },
    }
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def hub_pod(docs) -> dict:
    return find(docs, "Deployment", "-hub")["spec"]["template"]["spec"]


def mentions(doc, text: str) -> bool:
    return text in json.dumps(doc)


def test_the_write_credential_reaches_the_hub_pod_only(helm3, tmp_path):
    docs = helm_template(helm3, with_credential(tmp_path))
    validate_strictly(docs)
    pod = hub_pod(docs)
    (volume,) = [v for v in pod["volumes"] if v["name"] == "service-registry"]
    assert volume["secret"] == {
        "secretName": WRITE_SECRET,
        "defaultMode": 0o400,
        "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
    }
    (hub,) = pod["containers"]
    (mount,) = [m for m in hub["volumeMounts"] if m["name"] == "service-registry"]
    assert mount == {"name": "service-registry", "mountPath": MOUNT, "readOnly": True}
    assert MOUNT not in json.dumps(hub.get("env", []))  # the hub process's env: not named
    assert {"name": "lockstep", "containerPort": 10101, "protocol": "TCP"} in hub["ports"]
    assert WRITE_SECRET not in json.dumps(pod.get("imagePullSecrets", []))
    holders = [f"{d['kind']}/{d['metadata']['name']}" for d in docs if mentions(d, WRITE_SECRET)]
    assert holders == ["Deployment/r-lockstep-hub"]
    values = json.loads(find(docs, "ConfigMap", "-hub")["data"]["values.json"])
    assert values["service"] == {"enabled": True, "port": 10101, "registryCredentialDir": MOUNT}


def test_no_role_reads_secrets_and_only_the_proxy_reaches_the_service(helm3, tmp_path):
    docs = helm_template(helm3, with_credential(tmp_path))
    for role in by_kind(docs, "Role") + by_kind(docs, "ClusterRole"):
        for rule in role.get("rules", []):
            assert "secrets" not in rule.get("resources", []), role["metadata"]["name"]
    ports = find(docs, "Service", "-hub")["spec"]["ports"]
    assert {"name": "lockstep", "port": 10101, "targetPort": "lockstep", "protocol": "TCP"} in ports
    ingress = find(docs, "NetworkPolicy", "-hub")["spec"]["ingress"]
    to_service = [r for r in ingress if {"protocol": "TCP", "port": 10101} in r["ports"]]
    assert len(to_service) == 1 and len(to_service[0]["from"]) == 1
    assert (
        to_service[0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        == "proxy"
    )
    egress = find(docs, "NetworkPolicy", "-proxy")["spec"]["egress"]
    assert any({"protocol": "TCP", "port": 10101} in r["ports"] for r in egress)


async def test_the_service_process_gets_it_and_user_pods_do_not(helm3, tmp_path):
    app, _ = load_hub(tmp_path, with_credential(tmp_path), helm3)
    (entry,) = [s for s in app.config.JupyterHub.services if s["name"] == "lockstep"]
    assert entry["environment"]["DOCKER_CONFIG"] == MOUNT
    assert entry["environment"]["LOCKSTEP_SERVICE_BIND"] == "0.0.0.0"
    assert entry["url"] == "http://r-lockstep-hub:10101"
    others = [s for s in app.config.JupyterHub.services if s["name"] != "lockstep"]
    assert not any(MOUNT in json.dumps(s) for s in others)
    settings = json.loads(entry["environment"]["LOCKSTEP_SERVICE_SETTINGS"])
    assert MOUNT not in json.dumps(settings)
    spawner = make_spawner(app.config, user=hub_user("alice"))
    spawner.user_options = {"project": "forecast", "stage": "prod"}
    pod = spawner.api.api_client.sanitize_for_serialization(await spawner.get_pod_manifest())
    assert WRITE_SECRET not in json.dumps(pod) and MOUNT not in json.dumps(pod)
    assert pod["spec"].get("automountServiceAccountToken") is False


def test_without_a_credential_nothing_is_mounted_and_the_service_still_runs(helm3, tmp_path):
    docs = helm_template(helm3, DEFAULT)
    validate_strictly(docs)
    assert not [v for v in hub_pod(docs)["volumes"] if v["name"] == "service-registry"]
    values = json.loads(find(docs, "ConfigMap", "-hub")["data"]["values.json"])
    assert values["service"] == {"enabled": True, "port": 10101, "registryCredentialDir": ""}
    off = helm_template(
        helm3,
        DEFAULT,
        "--set",
        "lockstepService.enabled=false",
        "--set",
        f"lockstepService.registryCredential.existingSecret.name={WRITE_SECRET}",
    )
    assert not any(mentions(d, WRITE_SECRET) for d in off)
    assert all(p["name"] != "lockstep" for p in find(off, "Service", "-hub")["spec"]["ports"])


def test_the_schema_refuses_bad_credential_values(helm3):
    for bad in (
        "lockstepService.registryCredential.existingSecret.name=Not_A_Name",
        "lockstepService.registryCredential.existingSecret.key=a/b",
        "lockstepService.registryCredential.password=hunter2",
        "lockstepService.port=80",
    ):
        proc = subprocess.run(
            [helm3, "template", "r", str(CHART), "-f", str(DEFAULT), "--set", bad],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode != 0, bad
        assert "lockstepService" in proc.stderr, proc.stderr
