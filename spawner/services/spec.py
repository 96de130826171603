"""Model services, pure: a project's ``service:`` as a launch spec, a Docker create body
and Kubernetes Deployment + Service + NetworkPolicy objects.

A service runs the project's image *by digest*, with the same user, hardening, data
mounts, limits and labels a notebook server gets, because its container and its pod are
rendered from one ``launch.LaunchSpec`` by ``render_docker`` and ``render_kube``. What a
service changes, on purpose:

* the command is ``service.command`` from ``project.yaml``; the user label is ``service``;
* the workspace is mounted **read-only** (a service reads its model, never writes it); on
  Kubernetes a promoted model is fetched by the pod instead and no workspace is mounted
  (``spawner.services.kubemodel``, the ``model`` argument of ``kube_objects``);
  a model promoted with the image (``spawner.models``) is bound read-only at
  ``/opt/model`` from a content-addressed cache, named in ``LOCKSTEP_MODEL_DIGEST``; and
  the home is a ``tmpfs`` (a service keeps no state between restarts; replicas share none);
* Docker: restart policy ``unless-stopped``, a ``Healthcheck`` that GETs the health path
  with the environment's own python (images have no curl), the port published on
  ``Binding.host_ip`` only (loopback by default); replica *i* publishes ``host_port + i``;
* Kubernetes: a Deployment (rolling, never below the desired replicas), a ClusterIP
  Service and a NetworkPolicy that admits only the service port, from the peers given, and
  denies all egress; readiness and liveness probes GET the health path. ``helm_values``
  wraps the same objects as the Helm chart's ``services.<project>`` value, so the chart
  deploys them without a pod template of its own.

Containers are named ``lockstep-svc_<project>_<i>`` and carry ``org.lockstep.kind=service``
plus the digest label, so a deployer can tell which digest each replica runs.

Nothing here talks to an engine or a cluster; ``spawner.services.deployer`` does the Docker I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from spawner.docker.render import DockerOptions, render_container
from spawner.errors import LockstepError
from spawner.kube import render as render_kube
from spawner.labels import (
    HEALTH,
    IMAGE,
    KIND,
    MODEL_DIGEST,
    PROJECT,
    REPLICA,
    SERVICE_PORT,
    USER,
)
from spawner.launch.spec import (
    ImageRef,
    LaunchOptions,
    LaunchSpec,
    Mount,
    build_launch_spec,
)
from spawner.project import Project, Service
from spawner.services import kubemodel
from spawner.settings import ENV_PREFIX

SERVICE_USER = "service"
CONTAINER_PREFIX = "lockstep-svc"
K8S_CONTAINER = "service"
K8S_PORT_NAME = "http"
_NS = 1_000_000_000
MODEL_TARGET = "/opt/model"
MODEL_MOUNT = "lockstep-model"


class ServiceError(LockstepError):
    """A service that cannot be described, started or rolled (the message names the fix)."""


@dataclass(frozen=True)
class Binding:
    """Where Docker publishes the service port: ``host_ip:host_port`` (0: the service port)."""

    host_ip: str = "127.0.0.1"
    host_port: int = 0


@dataclass(frozen=True)
class ModelMount:
    """A promoted model: its digest and the host folder holding its files (a content-
    addressed cache, ``spawner.models.store.pull``), bound read-only at ``target``."""

    digest: str
    source: str
    target: str = MODEL_TARGET


@dataclass(frozen=True)
class HealthOptions:
    """Docker ``HEALTHCHECK`` timing (and the Kubernetes probes')."""

    interval_s: float = 2.0
    timeout_s: float = 3.0
    retries: int = 3
    start_period_s: float = 30.0


def service_of(project: Project) -> Service:
    """``project.service``, or a ``ServiceError`` that shows the section to add."""
    if project.service is None:
        raise ServiceError(
            f"project {project.name!r} has no 'service:' section in project.yaml; add e.g.\n"
            "service:\n  command: [python, serve.py, --port, \"8080\"]\n  port: 8080\n"
            "  health: /health"
        )
    return project.service


def container_name(project: str, index: int, *, suffix: str = "") -> str:
    """``lockstep-svc_<project>_<index>`` (``_<suffix>`` for a candidate during a roll).

    '_' is in no project name and no user slug, so no notebook server's container
    (``lockstep-<user>``: a hub user named ``svc-forecast-0``) ever gets this name (it was
    ``lockstep-svc-<project>-<index>`` before; the next deploy replaces such replicas)."""
    return f"{CONTAINER_PREFIX}_{project}_{index}" + (f"_{suffix}" if suffix else "")


def host_ports(service: Service, binding: Binding) -> list[int]:
    """The host port of each replica: ``host_port + i`` (``host_port`` 0: the service port)."""
    first = binding.host_port or service.port
    return [first + i for i in range(service.replicas)]


def _service_mounts(mounts: Sequence[Mount], *, tmpfs_size: str) -> tuple[Mount, ...]:
    out = []
    for mount in mounts:
        if mount.kind == "workspace":
            mount = replace(mount, read_only=True)
        elif mount.kind == "home":
            mount = Mount("tmpfs", "home", "", mount.target, read_only=False, size=tmpfs_size)
        out.append(mount)
    return tuple(sorted(out, key=lambda m: (m.target, m.kind)))


def service_launch_spec(
    *,
    project: Project,
    image: ImageRef,
    stage: str,
    data_sources: Mapping[str, str],
    options: LaunchOptions | None = None,
    model: ModelMount | None = None,
) -> LaunchSpec:
    """The launch spec of ``project``'s service on ``image`` (see module docstring).

    ``model``: the stage's promoted model, bound read-only at ``model.target`` with
    ``LOCKSTEP_MODEL_DIR`` and ``LOCKSTEP_MODEL_DIGEST`` in the environment."""
    service = service_of(project)
    options = options or LaunchOptions()
    env = {"LOCKSTEP_SERVICE_PORT": str(service.port), "PYTHONUNBUFFERED": "1"}
    if model is not None:
        env.update(LOCKSTEP_MODEL_DIR=model.target, LOCKSTEP_MODEL_DIGEST=model.digest)
    spec = build_launch_spec(
        project=project, image=image, user=SERVICE_USER, stage=stage,
        data_sources=data_sources, options=options, gpu=False, command=service.command,
        env=env,
    )
    mounts = list(spec.mounts)
    if model is not None:
        mounts.append(Mount("data", MODEL_MOUNT, model.source, model.target, read_only=True))
    return replace(spec, mounts=_service_mounts(mounts, tmpfs_size=options.tmpfs_size))


def model_of(spec: LaunchSpec) -> str:
    """The model digest ``spec`` serves ('' for none)."""
    return spec.env_dict().get("LOCKSTEP_MODEL_DIGEST", "")


def health_command(port: int, path: str, timeout_s: float) -> list[str]:
    """The ``Healthcheck.Test``: the env's python GETs ``path``; any error or non-2xx fails."""
    code = (f"import urllib.request as u; "
            f"u.urlopen('http://127.0.0.1:{int(port)}{path}', timeout={float(timeout_s)})")
    return ["CMD", f"{ENV_PREFIX}/bin/python", "-c", code]


def service_labels(spec: LaunchSpec, *, port: int, index: int, health: str) -> dict[str, str]:
    """The labels a service container adds to the launch spec's."""
    labels = {KIND: "service", SERVICE_PORT: str(port), REPLICA: str(index),
              IMAGE: spec.image.reference, HEALTH: health}
    if model_of(spec):
        labels[MODEL_DIGEST] = model_of(spec)
    return labels


def docker_body(
    spec: LaunchSpec,
    *,
    service: Service,
    index: int,
    binding: Binding = Binding(),
    health: HealthOptions = HealthOptions(),
    publish: bool = True,
    runtime: str = "",
    recursive_read_only: bool = False,
) -> dict[str, Any]:
    """The create body of replica ``index``: ``render_docker`` output plus port binding,
    restart policy and ``Healthcheck``. ``publish=False`` leaves the port unpublished
    (the candidate a roll checks before touching the running replica)."""
    host_port = host_ports(service, binding)[index]
    host_config: list[tuple[str, object]] = [("RestartPolicy", {"Name": "unless-stopped"})]
    if publish:
        host_config.append(("PortBindings", {f"{service.port}/tcp": [
            {"HostIp": binding.host_ip, "HostPort": str(host_port)}]}))
    options = DockerOptions(
        port=service.port, runtime=runtime, volume_nocopy=True,
        recursive_read_only=recursive_read_only,
        extra_labels=tuple(sorted(service_labels(spec, port=host_port, index=index,
                                                 health=service.health).items())),
        extra_host_config=tuple(host_config),
    )
    body = render_container(spec, options)
    body["Healthcheck"] = {
        "Test": health_command(service.port, service.health, health.timeout_s),
        "Interval": int(health.interval_s * _NS),
        "Timeout": int(health.timeout_s * _NS),
        "Retries": health.retries,
        "StartPeriod": int(health.start_period_s * _NS),
    }
    return dict(sorted(body.items()))


# -- Kubernetes ---------------------------------------------------------------------------

def k8s_name(project: str) -> str:
    return f"{CONTAINER_PREFIX}-{project}"


def selector_labels(project: str) -> dict[str, str]:
    """What the Service, the NetworkPolicy and the Deployment select on (immutable)."""
    return {PROJECT: project, KIND: "service"}


def _probe(service: Service, health: HealthOptions, *, liveness: bool) -> dict[str, Any]:
    probe: dict[str, Any] = {
        "httpGet": {"path": service.health, "port": K8S_PORT_NAME},
        "periodSeconds": max(1, int(health.interval_s)),
        "timeoutSeconds": max(1, int(health.timeout_s)),
        "failureThreshold": health.retries,
    }
    if liveness:
        probe["initialDelaySeconds"] = max(0, int(health.start_period_s))
    return probe


def _template(spec: LaunchSpec, service: Service, options: render_kube.KubeOptions,
              health: HealthOptions) -> dict[str, Any]:
    pod = render_kube.render_pod(spec, options, name=k8s_name(spec.project), port=service.port,
                                 extra_labels=selector_labels(spec.project))
    pod = copy.deepcopy(pod)
    pod_spec = pod["spec"]
    pod_spec["restartPolicy"] = "Always"
    container = pod_spec["containers"][0]
    container["name"] = K8S_CONTAINER
    container["ports"] = [{"name": K8S_PORT_NAME, "containerPort": service.port,
                           "protocol": "TCP"}]
    container["readinessProbe"] = _probe(service, health, liveness=False)
    container["livenessProbe"] = _probe(service, health, liveness=True)
    pod["spec"]["containers"][0] = dict(sorted(container.items()))
    metadata = {k: v for k, v in pod["metadata"].items() if k != "name"}
    return {"metadata": metadata, "spec": pod_spec}


def kube_objects(
    spec: LaunchSpec,
    *,
    service: Service,
    options: render_kube.KubeOptions | None = None,
    health: HealthOptions = HealthOptions(),
    namespace: str = "",
    ingress_from: Sequence[Mapping[str, Any]] = ({"podSelector": {}},),
    model: kubemodel.KubeModel | None = None,
) -> list[dict[str, Any]]:
    """Deployment, Service and NetworkPolicy for the service of ``spec``, in that order.

    ``ingress_from`` are NetworkPolicy peers allowed to reach the service port (default:
    every pod in the namespace); egress is denied. ``model``: the stage's promoted model,
    fetched by an init container and mounted read-only (``spawner.services.kubemodel``).
    """
    if model is not None:
        objects = kube_objects(kubemodel.model_spec(spec, model), service=service,
                               options=options, health=health, namespace=namespace,
                               ingress_from=ingress_from)
        return kubemodel.with_model(objects, model)
    name = k8s_name(spec.project)
    template = _template(spec, service, options or render_kube.KubeOptions(), health)
    labels = dict(sorted({**template["metadata"]["labels"]}.items()))
    labels.pop(USER, None)
    notes = template["metadata"]["annotations"]
    metadata: dict[str, Any] = {
        "name": name, "labels": labels,
        "annotations": {k: notes[k] for k in sorted(notes) if k.rsplit(".", 1)[-1]
                        in ("digest", "image", "lock-hash")},
    }
    if namespace:
        metadata["namespace"] = namespace
    selector = selector_labels(spec.project)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": copy.deepcopy(metadata),
        "spec": {
            "replicas": service.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": dict(sorted(selector.items()))},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": template,
        },
    }
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": copy.deepcopy(metadata),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(sorted(selector.items())),
            "ports": [{"name": K8S_PORT_NAME, "port": service.port,
                       "targetPort": K8S_PORT_NAME, "protocol": "TCP"}],
        },
    }
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": copy.deepcopy(metadata),
        "spec": {
            "podSelector": {"matchLabels": dict(sorted(selector.items()))},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [dict(p) for p in ingress_from],
                         "ports": [{"port": service.port, "protocol": "TCP"}]}],
            "egress": [],
        },
    }
    return [deployment, svc, policy]


def helm_values(
    spec: LaunchSpec,
    *,
    service: Service,
    options: render_kube.KubeOptions | None = None,
    health: HealthOptions = HealthOptions(),
    model: kubemodel.KubeModel | None = None,
) -> dict[str, Any]:
    """The Helm chart's ``services`` value for the service of ``spec``.

    ``{"services": {project: {"stage", "image", "objects"}}}`` where ``objects`` are
    ``kube_objects`` (no namespace: ``templates/model-services.yaml`` puts them in the
    release's) and ``image`` is the ``REPO@sha256:...`` the Deployment runs. Values files
    of several projects merge in Helm (``-f a.yaml -f b.yaml``) since each is keyed by its
    project.
    """
    objects = kube_objects(spec, service=service, options=options, health=health, model=model)
    entry = {"stage": spec.stage, "image": spec.image.reference, "objects": objects}
    if model is not None:
        entry["model"] = model.digest
    return {"services": {spec.project: entry}}
