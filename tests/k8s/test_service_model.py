"""Kubernetes model services carry their promoted model: the Deployment's pod fetches the
model artifact by digest in a ``fetch-model`` init container (the service's own image and
hardening) into an ``emptyDir`` that the service mounts read-only at ``/opt/model``; the
pull secret reaches the init container only; no workspace claim is mounted (so a fresh
install does not leave the service Pending); egress opens DNS and the registry port only.
Pinned by a golden file, strictly validated on the oldest and newest Kubernetes the chart
supports, and rendered through the chart.

Regenerate the golden file after an intended change with
``LOCKSTEP_UPDATE_GOLDEN=1 pytest tests/k8s/test_service_model.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from spawner.commands.deploy import chart_kube_options, helm_values_text
from spawner.kube.render import KubeOptions
from spawner.labels import MODEL_DIGEST
from spawner.services import kubemodel
from spawner.services.spec import helm_values, kube_objects, service_launch_spec
from tests.k8s.k8s_helpers import (
    CHART,
    PROJECTS,
    fake_image,
    find,
    helm_template,
    validate_strictly,
)

GOLDEN = Path(__file__).parent / "golden" / "service-model-forecast.json"
DEFAULT = CHART / "examples" / "default.yaml"
MODEL = kubemodel.KubeModel(
    "sha256:" + "ab" * 32, "https://registry.example.com", "lockstep/forecast"
)
OPTIONS = KubeOptions(
    data_volumes={"sales": {"pvc": "sales-data"}}, image_pull_secrets=("regcred",)
)


def spec(name: str = "forecast"):
    project = PROJECTS[name]
    return service_launch_spec(
        project=project,
        image=fake_image(name, "prod"),
        stage="prod",
        data_sources={m.name: "kubernetes" for m in project.data},
    )


def rendered(model=MODEL, options=OPTIONS) -> list[dict]:
    project = PROJECTS["forecast"]
    return kube_objects(
        spec(), service=project.service, options=options, namespace="models", model=model
    )


def check_golden(data) -> None:
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if os.environ.get("LOCKSTEP_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert GOLDEN.is_file(), f"{GOLDEN} missing; run with LOCKSTEP_UPDATE_GOLDEN=1"
    assert json.loads(GOLDEN.read_text()) == json.loads(text), "differs from golden"


def test_golden_and_strictly_valid():
    objects = rendered()
    check_golden(objects)
    validate_strictly([yaml.safe_load(yaml.dump(o)) for o in objects])


def test_the_init_container_fetches_by_digest_and_the_service_reads_only():
    deployment, _, policy = rendered()
    pod = deployment["spec"]["template"]["spec"]
    (serving,) = pod["containers"]
    (fetch,) = pod["initContainers"]
    assert fetch["image"] == serving["image"] == fake_image("forecast", "prod").reference
    assert fetch["securityContext"] == serving["securityContext"]
    assert fetch["securityContext"]["readOnlyRootFilesystem"] is True
    assert fetch["command"][:3] == ["/opt/env/bin/python", "-c", kubemodel.FETCH_SOURCE]
    assert fetch["command"][3:] == [
        "https://registry.example.com",
        "lockstep/forecast",
        MODEL.digest,
        "/opt/model",
    ]
    model_mount = {"name": "lockstep-model", "mountPath": "/opt/model", "readOnly": True}
    assert model_mount in serving["volumeMounts"]
    assert {"name": "lockstep-model", "mountPath": "/opt/model"} in fetch["volumeMounts"]
    env = {e["name"]: e["value"] for e in serving["env"]}
    assert env["LOCKSTEP_MODEL_DIR"] == "/opt/model"
    assert env["LOCKSTEP_MODEL_DIGEST"] == MODEL.digest and "LOCKSTEP_WORKSPACE" not in env
    assert deployment["spec"]["template"]["metadata"]["annotations"][MODEL_DIGEST] == MODEL.digest
    assert policy["spec"]["egress"] == [
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
        {"ports": [{"port": 443, "protocol": "TCP"}]},
    ]


def test_the_credential_reaches_the_init_container_only():
    pod = rendered()[0]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["lockstep-model-registry"]["secret"]["secretName"] == "regcred"
    (serving,) = pod["containers"]
    assert all(m["name"] != "lockstep-model-registry" for m in serving["volumeMounts"])
    assert "DOCKER_CONFIG" not in {e["name"] for e in serving.get("env", [])}
    (fetch,) = pod["initContainers"]
    assert fetch["env"] == [{"name": "DOCKER_CONFIG", "value": kubemodel.CREDENTIAL_DIR}]
    bare = rendered(options=KubeOptions(data_volumes={"sales": {"pvc": "sales-data"}}))
    pod = bare[0]["spec"]["template"]["spec"]
    assert "lockstep-model-registry" not in {v["name"] for v in pod["volumes"]}
    assert "env" not in pod["initContainers"][0]


def test_no_workspace_claim_so_a_fresh_install_does_not_wait_for_a_spawn():
    without = rendered(model=None)[0]["spec"]["template"]["spec"]
    claims = [v for v in without["volumes"] if "persistentVolumeClaim" in v]
    assert any(
        v["persistentVolumeClaim"]["claimName"] == "lockstep-ws-forecast" for v in claims
    )  # without a model the service reads the workspace (read-only)
    pod = rendered()[0]["spec"]["template"]["spec"]
    names = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert names == ["sales-data"]  # the data mount, read-only; no workspace claim
    assert all(m["mountPath"] != "/workspace" for m in pod["containers"][0]["volumeMounts"])


def test_inputs_are_not_changed_and_an_insecure_registry_opens_its_port():
    objects = kube_objects(spec(), service=PROJECTS["forecast"].service, options=OPTIONS)
    before = json.dumps(objects, sort_keys=True)
    local = kubemodel.KubeModel(MODEL.digest, "http://127.0.0.1:5000", "lockstep/forecast")
    carried = kubemodel.with_model(objects, local)
    assert json.dumps(objects, sort_keys=True) == before
    assert carried[2]["spec"]["egress"][1] == {"ports": [{"port": 5000, "protocol": "TCP"}]}


def test_the_chart_deploys_the_model_carrying_service(helm3, tmp_path):
    site = yaml.safe_load(DEFAULT.read_text())
    values = helm_values(
        spec(), service=PROJECTS["forecast"].service, options=chart_kube_options(site), model=MODEL
    )
    assert values["services"]["forecast"]["model"] == MODEL.digest
    path = tmp_path / "svc.yaml"
    path.write_text(helm_values_text(values))
    docs = helm_template(helm3, DEFAULT, "-f", str(path))
    validate_strictly(docs)
    pod = find(docs, "Deployment", "-svc-forecast")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["fetch-model"]
    assert pod["initContainers"][0]["image"] == pod["containers"][0]["image"]
    bad = yaml.safe_load(path.read_text())
    bad["services"]["forecast"]["objects"][0]["spec"]["template"]["spec"]["initContainers"][0][
        "image"
    ] = "busybox:latest"
    path.write_text(yaml.safe_dump(bad))
    import subprocess

    proc = subprocess.run(
        [helm3, "template", "r", str(CHART), "-f", str(DEFAULT), "-f", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "fetch-model" in proc.stderr, proc.stderr
