"""Render a ``LaunchSpec`` to a Kubernetes pod (and the claims it needs), as plain dicts.

This is the Kubernetes twin of ``render_docker``: both take the same engine-neutral
``launch.LaunchSpec``, so the pod runs the same digest, user, mounts, limits and labels as
the Docker container would. Everything here is pure: no API calls, no filesystem, no
``os.environ``; the output is sorted and deterministic so golden tests diff cleanly.

Guarantees
----------
- The image is the spec's ``REPO@sha256:...`` reference, never a tag.
- Hardening (pod + container ``securityContext``): uid 1000, gid 100, fsGroup 100,
  ``runAsNonRoot``, every capability dropped, no privilege escalation, seccomp
  ``RuntimeDefault``, read-only root filesystem with ``emptyDir`` volumes for ``/tmp``.
  Each item follows ``spec.hardening`` (all on unless the site turned one off).
- CPU and memory: the limit is the smaller of ``project.yaml`` ``resources`` and the
  site's ``c.Spawner.cpu_limit``/``mem_limit``; the request is the site's
  ``cpu_guarantee``/``mem_guarantee`` unless the project asks for more (its value x
  ``cpu_request_fraction``/``memory_request_fraction``), never above the limit
  (:func:`effective`); ``MEM_LIMIT`` & co. in the env say these values (``limit_env``).
- Data mounts are read-only twice: ``readOnly: true`` on the volumeMount *and* on the
  PVC/NFS volume source (kubespawner#344); a hostPath source has no such field and is
  read-only through its mount.
- Labels carry only valid label values. A digest (``sha256:<hex>``) and a lock hash do not
  fit a label value (``:`` is not allowed, 63 characters at most), so labels carry
  ``label_safe()`` of them (the hex, cut to 63 characters) and annotations carry the full
  values. NetworkPolicies select on ``org.lockstep.managed`` and ``org.lockstep.project``,
  whose values are already label-safe (``true``; a DNS-safe project name).

It must not talk to a cluster; ``spawner.kube.spawner`` is the glue that does.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from spawner.cuda import node_selector_terms, parse_requirement
from spawner.labels import DIGEST, IMAGE, LOCK_HASH, MANAGED, PIDS_LIMIT, PROJECT, RUNTIME, USER
from spawner.launch.limitenv import limit_env
from spawner.launch.spec import LaunchSpec, Mount, safe_slug

LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
CONTAINER_NAME = "notebook"  # KubeSpawner.poll() reads the status of the container so named
PORT_NAME = "notebook-port"  # KubeSpawner finds the server port by this name
GPU_RESOURCES = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}
FULL_VALUE_LABELS = (DIGEST, LOCK_HASH)


class KubeRenderError(ValueError):
    """The site's Kubernetes options cannot express this spec (the message names the fix)."""


@dataclass(frozen=True)
class GpuPlacement:
    """Where pods asking for one GPU type may run: node selector and tolerations."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class KubeOptions:
    """The site's Kubernetes choices (from ``c.LockstepKubeSpawner.*``), applied to every pod.

    ``data_volumes`` maps a data mount (``"<project>/<mount>"`` or just ``"<mount>"``; the
    first wins) to one volume source: ``{"pvc": "claim"}``, ``{"nfs": {"server": ...,
    "path": ...}}`` or ``{"hostPath": "/srv/data/x"}``. ``gpu_placement`` is keyed by GPU
    type, then vendor, then ``""`` (any GPU).
    """

    data_volumes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    workspace_claim_template: str = "lockstep-ws-{project}"
    workspace_storage_class: str = ""
    home_storage: Literal["pvc", "emptyDir"] = "pvc"
    home_size: str = "10Gi"
    storage_class: str = ""
    tmp_medium: Literal["", "Memory"] = ""
    gpu_placement: Mapping[str, GpuPlacement] = field(default_factory=dict)
    runtime_classes: Mapping[str, str] = field(
        default_factory=lambda: {"gvisor": "gvisor", "kata": "kata"})
    image_pull_secrets: tuple[str, ...] = ()
    image_pull_policy: str = "IfNotPresent"
    cpu_request_fraction: float = 1.0
    memory_request_fraction: float = 1.0
    cuda_affinity: bool = True
    """A project's ``gpu.cuda`` becomes required node affinity on GPU feature discovery's
    ``nvidia.com/cuda.runtime.*`` labels (``spawner.cuda.node_selector_terms``)."""
    cpu_limit: float | None = None
    mem_limit: int | None = None
    cpu_guarantee: float | None = None
    mem_guarantee: int | None = None
    """The site's ``Spawner`` limits and guarantees (None: not set), see :func:`resources`."""


def label_safe(value: str) -> str:
    """A valid label value for ``value``: drop an ``algo:`` prefix, keep 63 characters.

    ``"sha256:9f86d0..."`` -> ``"9f86d0..."`` (63 hex). Other characters a label value
    may not hold become ``-``; leading and trailing non-alphanumerics are stripped.
    """
    text = re.sub(r"^[a-z0-9]+:", "", value)
    text = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63]
    return text.strip("-_.")


def pod_labels(spec: LaunchSpec) -> dict[str, str]:
    """``launch.spec_labels`` made label-safe (see module docstring)."""
    return {key: label_safe(value) for key, value in spec.labels}


def pod_annotations(spec: LaunchSpec) -> dict[str, str]:
    """The full values the labels had to shorten, plus what labels cannot say."""
    labels = spec.labels_dict()
    notes = {key: labels.get(key, "") for key in FULL_VALUE_LABELS}
    notes[USER] = spec.user
    notes[IMAGE] = spec.image.reference
    notes[RUNTIME] = spec.runtime
    # Kubernetes has no per-pod pids limit (it is the kubelet's podPidsLimit); record it.
    notes[PIDS_LIMIT] = str(spec.resources.pids)
    return notes


def env_entry(name: str, value: Any) -> dict[str, Any]:
    """One ``EnvVar``: a string value, or a ``valueFrom`` reference (never ``value: {}``)."""
    if isinstance(value, Mapping):
        ref = value.get("valueFrom", value.get("value_from"))
        if ref is not None:
            return {"name": name, "valueFrom": copy.deepcopy(dict(ref))}
        if "value" in value:
            return {"name": name, "value": str(value["value"])}
        raise KubeRenderError(
            f"environment[{name!r}] = {dict(value)!r}: give a string or "
            "{'valueFrom': {...}} (a secretKeyRef, configMapKeyRef or fieldRef)")
    return {"name": name, "value": str(value)}


def home_claim(project: str, user: str, server: str = "") -> str:
    """The home claim of ``user`` on ``project`` for one (named) server.

    The parts are joined with ``.``, which neither a project name, a user slug nor a server
    slug can contain, so two different (project, user, server) never share a claim:
    ``lockstep-home-<project>.<user>`` (default server) and
    ``lockstep-home-<project>.<user>.<server>``. (Before, the default server's claim was
    ``lockstep-home-<project>-<user>``, shared by ``ml``/``team-bob`` and ``ml-team``/``bob``;
    docs/production.md, "Names", says how to move an old claim.)
    """
    if not server:
        return f"lockstep-home-{project}.{safe_slug(user)}"
    return f"lockstep-home-{project}.{safe_slug(user)}.{safe_slug(server)}"


def for_server(spec: LaunchSpec, server: str) -> LaunchSpec:
    """``spec`` with its home mount on ``home_claim(..., server)`` ("" = the default server:
    ``lockstep-home-<project>.<user>``, a valid claim name, unlike the Docker volume's '_')."""
    name = home_claim(spec.project, spec.user, server)
    mounts = tuple(replace(m, source=name) if m.kind == "home" else m for m in spec.mounts)
    return replace(spec, mounts=mounts)


def _cpu(value: float) -> str:
    return f"{round(value * 1000)}m"


def effective(project: float, fraction: float, site_limit: float | None,
              site_guarantee: float | None) -> tuple[float, float]:
    """(limit, request) of one resource, from the project's ``resources`` value, the
    request fraction and the site's ``Spawner`` limit and guarantee (None or 0: not set).

    The limit is the smaller of the project's and the site's, so neither can raise the
    other's cap. The request is the site's guarantee unless the project asks for more
    (its value x the request fraction), and never above the limit."""
    limit = min(project, site_limit) if site_limit else project
    return limit, min(limit, max(project * fraction, site_guarantee or 0))


def _resources(spec: LaunchSpec, options: KubeOptions) -> tuple[dict[str, Any], dict]:
    """The container's ``resources`` and the ``limit_env`` variables that match them."""
    cpu, cpu_request = effective(spec.resources.cpu, options.cpu_request_fraction,
                                 options.cpu_limit, options.cpu_guarantee)
    memory, memory_request = effective(spec.resources.memory_bytes,
                                       options.memory_request_fraction, options.mem_limit,
                                       options.mem_guarantee)
    limits: dict[str, Any] = {"cpu": _cpu(cpu), "memory": str(int(memory))}
    requests: dict[str, Any] = {"cpu": _cpu(cpu_request),
                                "memory": str(int(memory_request))}
    if spec.gpu is not None:
        limits[GPU_RESOURCES[spec.gpu.vendor]] = str(spec.gpu.count)  # quantities are strings
    env = limit_env(memory=memory, cpu=cpu, memory_guarantee=memory_request,
                    cpu_guarantee=cpu_request)
    return {"limits": limits, "requests": requests}, env


def _data_source(spec: LaunchSpec, mount: Mount, options: KubeOptions) -> dict[str, Any]:
    keys = (f"{spec.project}/{mount.name}", mount.name)
    source = next((options.data_volumes[k] for k in keys if k in options.data_volumes), None)
    if source is None:
        raise KubeRenderError(
            f"project {spec.project!r}: data mount {mount.name!r} has no Kubernetes volume; "
            f"map it, e.g. c.LockstepKubeSpawner.data_volumes = "
            f"{{'{keys[0]}': {{'pvc': 'data-{mount.name}'}}}} (or 'nfs', 'hostPath')"
        )
    if set(source) == {"pvc"}:
        return {"persistentVolumeClaim": {"claimName": source["pvc"], "readOnly": True}}
    if set(source) == {"nfs"}:
        return {"nfs": {"server": source["nfs"]["server"], "path": source["nfs"]["path"],
                        "readOnly": True}}
    if set(source) == {"hostPath"}:
        return {"hostPath": {"path": source["hostPath"], "type": "Directory"}}
    raise KubeRenderError(
        f"data_volumes[{keys[0]!r}] = {dict(source)!r}: use exactly one of "
        "{'pvc': CLAIM}, {'nfs': {'server': HOST, 'path': PATH}}, {'hostPath': PATH}"
    )


def workspace_claim(spec: LaunchSpec, options: KubeOptions) -> str:
    """The shared (ReadWriteMany) claim of the spec's project."""
    return options.workspace_claim_template.format(project=spec.project)


def _volume(spec: LaunchSpec, mount: Mount, options: KubeOptions) -> dict[str, Any]:
    name = volume_name(mount)
    if mount.kind == "data":
        return {"name": name, **_data_source(spec, mount, options)}
    if mount.kind == "workspace":
        claim = workspace_claim(spec, options)
        return {"name": name, "persistentVolumeClaim": {"claimName": claim}}
    if mount.kind == "home" and options.home_storage == "pvc":
        return {"name": name, "persistentVolumeClaim": {"claimName": mount.source}}
    empty: dict[str, Any] = {}
    if mount.kind == "tmpfs":
        if options.tmp_medium:
            empty["medium"] = options.tmp_medium
        if mount.size:
            empty["sizeLimit"] = mount.size
    return {"name": name, "emptyDir": empty}


def volume_name(mount: Mount) -> str:
    """The pod volume name of a mount (a DNS label: data mount names are DNS-safe)."""
    return f"data-{mount.name}" if mount.kind == "data" else mount.name


def _security(spec: LaunchSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    hard = spec.hardening
    pod: dict[str, Any] = {
        "runAsUser": spec.uid, "runAsGroup": spec.gid, "fsGroup": spec.gid,
        "fsGroupChangePolicy": "OnRootMismatch",
    }
    container: dict[str, Any] = {"runAsUser": spec.uid, "runAsGroup": spec.gid,
                                 "privileged": False}
    if hard.run_as_non_root:
        pod["runAsNonRoot"] = container["runAsNonRoot"] = True
    if hard.seccomp_default:
        pod["seccompProfile"] = container["seccompProfile"] = {"type": "RuntimeDefault"}
    if hard.cap_drop_all:
        container["capabilities"] = {"drop": ["ALL"]}
    container["allowPrivilegeEscalation"] = not hard.no_new_privileges
    container["readOnlyRootFilesystem"] = hard.read_only_root
    return pod, container


def _placement(spec: LaunchSpec, options: KubeOptions) -> tuple[dict[str, str], list[dict]]:
    if spec.gpu is None:
        return {}, []
    tolerations = [{"key": GPU_RESOURCES[spec.gpu.vendor], "operator": "Exists",
                    "effect": "NoSchedule"}]
    for key in (spec.gpu.type, spec.gpu.vendor, ""):
        if key in options.gpu_placement:
            found = options.gpu_placement[key]
            tolerations += [dict(t) for t in found.tolerations]
            return dict(sorted(found.node_selector.items())), tolerations
    return {}, tolerations


def cuda_affinity(spec: LaunchSpec, options: KubeOptions) -> dict[str, Any]:
    """Required node affinity for a GPU pod whose project states ``gpu.cuda`` ({} if none):
    nodes whose driver supports that CUDA, as GPU feature discovery labels them."""
    if spec.gpu is None or not spec.gpu.cuda or not options.cuda_affinity:
        return {}
    terms = node_selector_terms(parse_requirement(spec.gpu.cuda))
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": terms}}}


def and_node_terms(first: list[dict], second: list[dict]) -> list[dict]:
    """Node selector terms matching where both lists match (terms are ORed, the expressions
    in one term ANDed, so each pair of terms is joined); either list empty: the other."""
    if not first or not second:
        return [dict(t) for t in first or second]
    joined = []
    for a in first:
        for b in second:
            term = {key: [*a.get(key, []), *b.get(key, [])]
                    for key in ("matchExpressions", "matchFields") if key in a or key in b}
            joined.append(term)
    return joined


def render_pod(
    spec: LaunchSpec,
    options: KubeOptions = KubeOptions(),
    *,
    name: str,
    port: int = 8888,
    extra_labels: Mapping[str, str] | None = None,
    extra_annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The pod manifest running ``spec``, as a dict the Kubernetes API accepts.

    ``extra_labels``/``extra_annotations`` are the engine's own (KubeSpawner's
    ``component``, ``hub.jupyter.org/username``...); lockstep's keys win on a clash.
    """
    pod_sc, container_sc = _security(spec)
    mounts = sorted(spec.mounts, key=lambda m: m.target)
    volume_mounts = [
        {"name": volume_name(m), "mountPath": m.target,
         **({"readOnly": True} if m.read_only else {})}
        for m in mounts
    ]
    volumes = sorted((_volume(spec, m, options) for m in mounts), key=lambda v: v["name"])
    resources, limit_vars = _resources(spec, options)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image.reference,
        "imagePullPolicy": options.image_pull_policy,
        "env": [env_entry(k, v) for k, v in sorted({**dict(spec.env), **limit_vars}.items())],
        "ports": [{"name": PORT_NAME, "containerPort": port, "protocol": "TCP"}],
        "resources": resources,
        "securityContext": container_sc,
        "volumeMounts": volume_mounts,
        "workingDir": spec.home,
    }
    if spec.command:
        container["args"] = list(spec.command)
    node_selector, tolerations = _placement(spec, options)
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "containers": [container],
        "enableServiceLinks": False,
        "restartPolicy": "OnFailure",
        "securityContext": pod_sc,
        "volumes": volumes,
    }
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if affinity := cuda_affinity(spec, options):
        pod_spec["affinity"] = affinity
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if options.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in sorted(options.image_pull_secrets)]
    if spec.runtime != "runc":
        if spec.runtime not in options.runtime_classes:
            raise KubeRenderError(
                f"project {spec.project!r} asks for isolation {spec.runtime!r} but no "
                f"RuntimeClass is mapped; set c.LockstepKubeSpawner.runtime_classes = "
                f"{{'{spec.runtime}': '{spec.runtime}'}} after installing it on the nodes"
            )
        pod_spec["runtimeClassName"] = options.runtime_classes[spec.runtime]
    labels = {**dict(extra_labels or {}), **pod_labels(spec)}
    annotations = {**dict(extra_annotations or {}), **pod_annotations(spec)}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": dict(sorted(labels.items())),
                     "annotations": dict(sorted(annotations.items()))},
        "spec": pod_spec,
    }


def render_claims(spec: LaunchSpec, options: KubeOptions = KubeOptions()) -> list[dict[str, Any]]:
    """The PersistentVolumeClaims the pod needs: the project workspace (ReadWriteMany,
    shared by members) and the user's home (ReadWriteOnce) when homes are claims."""
    claims = []
    labels = {MANAGED: "true", PROJECT: spec.project}
    for mount in spec.mounts:
        if mount.kind == "workspace":
            claims.append(_claim(workspace_claim(spec, options), "ReadWriteMany",
                                 mount.size or "10Gi", options.workspace_storage_class, labels))
        elif mount.kind == "home" and options.home_storage == "pvc":
            user_labels = {**labels, USER: pod_labels(spec)[USER]}
            claims.append(_claim(mount.source, "ReadWriteOnce", options.home_size,
                                 options.storage_class, user_labels))
    return sorted(claims, key=lambda c: c["metadata"]["name"])


def _claim(name: str, mode: str, size: str, storage_class: str,
           labels: Mapping[str, str]) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": [mode], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "labels": dict(sorted(labels.items()))},
        "spec": spec,
    }
