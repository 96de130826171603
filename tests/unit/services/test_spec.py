"""Model services, pure: the service launch spec, its Docker body and Kubernetes objects."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from spawner.docker.render import DockerOptions, render_container
from spawner.kube.render import KubeOptions, render_pod
from spawner.launch.spec import ImageRef, build_launch_spec
from spawner.project import load_project, parse_project
from spawner.services.spec import (
    Binding,
    ServiceError,
    container_name,
    docker_body,
    health_command,
    host_ports,
    kube_objects,
    service_launch_spec,
)

ROOT = Path(__file__).resolve().parents[3]
DIGEST = "sha256:" + "ab" * 32
IMAGE = ImageRef(f"127.0.0.1:5000/lockstep/forecast@{DIGEST}", lock_hash="sha256:" + "f" * 64)
FORECAST = load_project(ROOT / "environments" / "forecast")
SOURCES = {"sales": "/srv/data/sales"}
KUBE = KubeOptions(data_volumes={"forecast/sales": {"pvc": "sales-data"}})


def spec(project=FORECAST):
    return service_launch_spec(project=project, image=IMAGE, stage="prod", data_sources=SOURCES)


def test_service_spec_runs_the_service_command_by_digest():
    s = spec()
    assert s.command == FORECAST.service.command
    assert s.image.reference.endswith("@" + DIGEST)
    assert s.labels_dict()["org.lockstep.user"] == "service"
    assert s.env_dict()["LOCKSTEP_SERVICE_PORT"] == "8080"


def test_service_reads_its_workspace_and_keeps_no_home():
    mounts = {m.target: m for m in spec().mounts}
    assert mounts["/workspace"].kind == "workspace" and mounts["/workspace"].read_only
    assert mounts["/data/sales"].read_only and mounts["/data/sales"].source == "/srv/data/sales"
    assert mounts["/home/jovyan"].kind == "tmpfs"


def test_a_project_without_service_is_refused_with_the_section_to_add():
    bare = parse_project("name: bare\n", source="project.yaml")
    with pytest.raises(ServiceError, match=r"(?s)no .service:. section.*port: 8080"):
        service_launch_spec(project=bare, image=IMAGE, stage="prod", data_sources={})


def test_docker_body_is_the_rendered_server_body_plus_service_keys():
    s = spec()
    body = docker_body(s, service=FORECAST.service, index=0)
    plain = render_container(s, DockerOptions(port=8080, volume_nocopy=True))
    for key in ("Image", "User", "Env", "NetworkingConfig", "Cmd", "WorkingDir"):
        assert body[key] == plain[key]
    host, plain_host = body["HostConfig"], plain["HostConfig"]
    for key in ("CapDrop", "SecurityOpt", "ReadonlyRootfs", "Privileged", "Mounts", "Memory",
                "NanoCpus", "PidsLimit", "NetworkMode", "IpcMode"):
        assert host[key] == plain_host[key], key
    assert host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] is True
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert host["RestartPolicy"] == {"Name": "unless-stopped"}
    assert host["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}
    assert body["Labels"]["org.lockstep.digest"] == DIGEST
    assert body["Labels"]["org.lockstep.kind"] == "service"
    assert body["Labels"]["org.lockstep.image"] == IMAGE.reference


def test_healthcheck_uses_the_env_python_not_curl():
    body = docker_body(spec(), service=FORECAST.service, index=0)
    check = body["Healthcheck"]
    assert check["Test"][:2] == ["CMD", "/opt/env/bin/python"]
    assert "http://127.0.0.1:8080/health" in check["Test"][3]
    assert check["Retries"] >= 1 and check["Interval"] >= 1_000_000
    code = health_command(8080, "/health", 2)[3]
    compile(code, "healthcheck", "exec")  # valid python


def test_binding_and_replicas_choose_host_ports():
    service = FORECAST.service.model_copy(update={"replicas": 3})
    assert host_ports(service, Binding()) == [8080, 8081, 8082]
    assert host_ports(service, Binding("0.0.0.0", 9000)) == [9000, 9001, 9002]
    body = docker_body(spec(), service=service, index=2, binding=Binding("0.0.0.0", 9000))
    assert body["HostConfig"]["PortBindings"]["8080/tcp"] == [
        {"HostIp": "0.0.0.0", "HostPort": "9002"}]
    assert body["Labels"]["org.lockstep.service-port"] == "9002"
    candidate = docker_body(spec(), service=service, index=0, publish=False)
    assert "PortBindings" not in candidate["HostConfig"]
    assert container_name("forecast", 2) == "lockstep-svc_forecast_2"
    assert container_name("forecast", 0, suffix="next") == "lockstep-svc_forecast_0_next"


def test_kube_objects_are_deployment_service_and_networkpolicy():
    deployment, service, policy = kube_objects(spec(), service=FORECAST.service, options=KUBE,
                                               namespace="models")
    assert [o["kind"] for o in (deployment, service, policy)] == [
        "Deployment", "Service", "NetworkPolicy"]
    assert {o["metadata"]["namespace"] for o in (deployment, service, policy)} == {"models"}
    selector = deployment["spec"]["selector"]["matchLabels"]
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= template_labels.items()
    assert service["spec"]["selector"] == selector == policy["spec"]["podSelector"]["matchLabels"]
    assert deployment["metadata"]["annotations"]["org.lockstep.digest"] == DIGEST
    assert policy["spec"]["egress"] == [] and policy["spec"]["policyTypes"] == ["Ingress",
                                                                               "Egress"]
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]


def test_pod_template_is_render_kube_output_with_documented_changes():
    s = spec()
    deployment = kube_objects(s, service=FORECAST.service, options=KUBE)[0]
    template = deployment["spec"]["template"]
    pod = copy.deepcopy(render_pod(s, KUBE, name="x", port=8080,
                                   extra_labels={"org.lockstep.kind": "service"}))
    container, ours = pod["spec"]["containers"][0], template["spec"]["containers"][0]
    for key in ("image", "args", "env", "resources", "securityContext", "volumeMounts"):
        assert ours[key] == container[key], key
    assert ours["image"].endswith("@" + DIGEST)
    assert ours["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert template["spec"]["restartPolicy"] == "Always"
    assert template["spec"]["securityContext"] == pod["spec"]["securityContext"]
    assert template["spec"]["volumes"] == pod["spec"]["volumes"]
    mounts = {m["mountPath"]: m for m in ours["volumeMounts"]}
    assert mounts["/workspace"]["readOnly"] and mounts["/data/sales"]["readOnly"]


def test_the_server_spec_is_unchanged_by_the_service_builder():
    server = build_launch_spec(project=FORECAST, image=IMAGE, user="alice", stage="prod",
                               data_sources=SOURCES)
    before = copy.deepcopy(server)
    spec()
    assert server == before
