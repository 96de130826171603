"""KubeSpawner's own pod traits, merged into the pod that ``spawner.kube.render`` made.

A site that moves from KubeSpawner (or runs inside Zero to JupyterHub) keeps what it set:
tolerations, node selector, affinities, scheduler and priority class, service account,
``extra_pod_config``, ``extra_container_config``, init and extra containers, volumes and
mounts, lifecycle hooks, extra resources, ``valueFrom`` environment, uid/gid and security
contexts, the working directory and the internal-SSL secret. :class:`PodTraits` holds their
values as plain data (the spawner reads them, keys already camelCase); :func:`apply_traits`
returns a new pod.

Guarantees
----------
- Pure: no I/O, the input pod is never mutated; the output is deterministic.
- What lockstep owns wins: the image (a digest), the container name, the project's CPU,
  memory and GPU limits, lockstep's volumes and mount paths. A trait that would replace
  one of them raises :class:`~spawner.kube.render.KubeRenderError` naming the trait.
- Lists are extended, never replaced (``extra_container_config = {"env": [...]}`` adds
  variables, it does not drop the hub's token); ``securityContext`` and ``resources`` are
  merged key by key; other keys replace, as KubeSpawner's ``update_k8s_model`` does.

It must not decide whether a trait weakens hardening (``spawner.kube.hardening`` does,
before anything is rendered).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spawner.kube.render import KubeRenderError, and_node_terms, env_entry

SSL_VOLUME = "jupyterhub-internal-certs"
OWNED_CONTAINER_KEYS = ("name", "image")
MERGED_KEYS = ("securityContext", "resources", "nodeSelector", "lifecycle")


@dataclass(frozen=True)
class PodTraits:
    """KubeSpawner trait values, as Kubernetes JSON (camelCase keys), for one pod."""

    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    node_affinity_required: tuple[Mapping[str, Any], ...] = ()
    node_affinity_preferred: tuple[Mapping[str, Any], ...] = ()
    pod_affinity_required: tuple[Mapping[str, Any], ...] = ()
    pod_affinity_preferred: tuple[Mapping[str, Any], ...] = ()
    pod_anti_affinity_required: tuple[Mapping[str, Any], ...] = ()
    pod_anti_affinity_preferred: tuple[Mapping[str, Any], ...] = ()
    scheduler_name: str = ""
    priority_class_name: str = ""
    service_account: str = ""
    automount_service_account_token: bool | None = None
    extra_pod_config: Mapping[str, Any] = field(default_factory=dict)
    extra_container_config: Mapping[str, Any] = field(default_factory=dict)
    init_containers: tuple[Mapping[str, Any], ...] = ()
    extra_containers: tuple[Mapping[str, Any], ...] = ()
    volumes: tuple[Mapping[str, Any], ...] = ()
    volume_mounts: tuple[Mapping[str, Any], ...] = ()
    lifecycle_hooks: Mapping[str, Any] = field(default_factory=dict)
    extra_resource_limits: Mapping[str, str] = field(default_factory=dict)
    extra_resource_guarantees: Mapping[str, str] = field(default_factory=dict)
    env_refs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Environment given as objects: name -> ``{"valueFrom": {...}}`` (KubeSpawner's shape)."""
    uid: int | None = None
    gid: int | None = None
    fs_gid: int | None = None
    supplemental_gids: tuple[int, ...] = ()
    container_security_context: Mapping[str, Any] = field(default_factory=dict)
    pod_security_context: Mapping[str, Any] = field(default_factory=dict)
    ssl_secret: str = ""
    """The internal-SSL secret's name when ``internal_ssl`` is on, else empty."""
    ssl_mount_path: str = "/etc/jupyterhub/ssl/"
    working_dir: str = ""
    """KubeSpawner's ``working_dir`` (already expanded); '' keeps lockstep's (the home)."""


def camel_keys(obj: Mapping[str, Any], model: str) -> dict[str, Any]:
    """Top-level keys of ``obj`` as the API spells them (``mount_path`` -> ``mountPath``),
    as KubeSpawner accepts both; ``model`` is a kubernetes client model (``V1Container``)."""
    from kubernetes_asyncio.client import models

    attribute_map = getattr(models, model).attribute_map
    return {attribute_map.get(k, k): copy.deepcopy(v) for k, v in obj.items()}


def _affinity(traits: PodTraits) -> dict[str, Any]:
    def part(required_key: str, required, preferred) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if required:
            out["requiredDuringSchedulingIgnoredDuringExecution"] = (
                {"nodeSelectorTerms": [dict(t) for t in required]}
                if required_key == "node" else [dict(t) for t in required])
        if preferred:
            out["preferredDuringSchedulingIgnoredDuringExecution"] = [dict(t) for t in preferred]
        return out

    affinity = {
        "nodeAffinity": part("node", traits.node_affinity_required,
                             traits.node_affinity_preferred),
        "podAffinity": part("pod", traits.pod_affinity_required, traits.pod_affinity_preferred),
        "podAntiAffinity": part("pod", traits.pod_anti_affinity_required,
                                traits.pod_anti_affinity_preferred),
    }
    return {k: v for k, v in affinity.items() if v}


def _with_lockstep_affinity(site: dict[str, Any], own: Mapping[str, Any]) -> dict[str, Any]:
    """The site's affinity traits, still requiring the nodes lockstep's pod requires (the
    project's CUDA, ``render.cuda_affinity``): required node terms are joined, not replaced."""
    key = "requiredDuringSchedulingIgnoredDuringExecution"
    own_terms = ((own.get("nodeAffinity") or {}).get(key) or {}).get("nodeSelectorTerms") or []
    if not own_terms:
        return site
    node = dict(site.get("nodeAffinity") or {})
    site_terms = (node.get(key) or {}).get("nodeSelectorTerms") or []
    node[key] = {"nodeSelectorTerms": and_node_terms(site_terms, copy.deepcopy(own_terms))}
    return {**site, "nodeAffinity": node}


def _merge(target: dict[str, Any], changes: Mapping[str, Any], trait: str,
           owned: Mapping[str, Any] = {}) -> None:  # noqa: B006 - read only
    """``changes`` into ``target`` in place (``target`` is this module's own copy)."""
    for key, value in changes.items():
        if key in owned and target.get(key) != value:
            raise KubeRenderError(
                f"{trait} sets {key!r}, which lockstep decides ({owned[key]}); remove "
                f"{key!r} from c.KubeSpawner.{trait}")
        if isinstance(value, list) and isinstance(target.get(key), list):
            target[key] = target[key] + copy.deepcopy(value)
        elif key in MERGED_KEYS and isinstance(value, Mapping):
            base = dict(target.get(key) or {})
            for sub, subvalue in value.items():
                if key == "resources" and isinstance(subvalue, Mapping):
                    # the project's limits win: extras only add new resource names
                    base[sub] = {**dict(subvalue), **dict(base.get(sub) or {})}
                else:
                    base[sub] = copy.deepcopy(subvalue)
            target[key] = base
        else:
            target[key] = copy.deepcopy(value)


def _check_unique(items: list[Mapping[str, Any]], key: str, what: str, trait: str) -> None:
    seen: set[str] = set()
    for item in items:
        if item[key] in seen:
            raise KubeRenderError(
                f"{trait}: {what} {item[key]!r} is already used by lockstep's pod; "
                f"pick another {key} in c.KubeSpawner.{trait}")
        seen.add(item[key])


def _security(pod_spec: dict[str, Any], container: dict[str, Any], traits: PodTraits) -> None:
    psc, csc = dict(pod_spec["securityContext"]), dict(container["securityContext"])
    for key, value in (("runAsUser", traits.uid), ("runAsGroup", traits.gid)):
        if value is not None:
            psc[key] = csc[key] = int(value)
    if traits.fs_gid is not None:
        psc["fsGroup"] = int(traits.fs_gid)
    if traits.supplemental_gids:
        psc["supplementalGroups"] = [int(g) for g in traits.supplemental_gids]
    psc.update(copy.deepcopy(dict(traits.pod_security_context)))
    csc.update(copy.deepcopy(dict(traits.container_security_context)))
    pod_spec["securityContext"], container["securityContext"] = psc, csc


def _container(container: dict[str, Any], traits: PodTraits) -> None:
    env = list(container["env"])
    env += [env_entry(name, ref) for name, ref in sorted(traits.env_refs.items())]
    if traits.ssl_secret:
        path = traits.ssl_mount_path
        ssl = {"JUPYTERHUB_SSL_KEYFILE": path + "ssl.key",
               "JUPYTERHUB_SSL_CERTFILE": path + "ssl.crt",
               "JUPYTERHUB_SSL_CLIENT_CA": path + "notebooks-ca_trust.crt"}
        env = [e for e in env if e["name"] not in ssl]
        env += [{"name": k, "value": v} for k, v in sorted(ssl.items())]
        container["volumeMounts"] = [*container["volumeMounts"],
                                     {"name": SSL_VOLUME, "mountPath": path, "readOnly": True}]
    container["env"] = sorted(env, key=lambda e: e["name"])
    container["volumeMounts"] = [*container["volumeMounts"],
                                 *(dict(m) for m in traits.volume_mounts)]
    _check_unique(container["volumeMounts"], "mountPath", "mount path", "volume_mounts")
    if traits.working_dir:
        container["workingDir"] = traits.working_dir
    if traits.lifecycle_hooks:
        container["lifecycle"] = copy.deepcopy(dict(traits.lifecycle_hooks))
    resources = container["resources"]
    resources["limits"] = {**dict(traits.extra_resource_limits), **resources["limits"]}
    resources["requests"] = {**dict(traits.extra_resource_guarantees), **resources["requests"]}
    owned = {"name": "the notebook container", "image": container["image"]}
    _merge(container, traits.extra_container_config, "extra_container_config", owned)


def apply_traits(pod: Mapping[str, Any], traits: PodTraits) -> dict[str, Any]:
    """A copy of ``pod`` with ``traits`` merged in (see the module docstring)."""
    out = copy.deepcopy(dict(pod))
    spec = out["spec"]
    container = spec["containers"][0]
    _security(spec, container, traits)
    _container(container, traits)
    if traits.node_selector:
        spec["nodeSelector"] = {**dict(traits.node_selector), **spec.get("nodeSelector", {})}
    tolerations = [*spec.get("tolerations", []),
                   *(dict(t) for t in traits.tolerations if dict(t) not in spec.get(
                       "tolerations", []))]
    if tolerations:
        spec["tolerations"] = tolerations
    if affinity := _affinity(traits):
        spec["affinity"] = _with_lockstep_affinity(affinity, spec.get("affinity") or {})
    for key, value in (("schedulerName", traits.scheduler_name),
                       ("priorityClassName", traits.priority_class_name),
                       ("serviceAccountName", traits.service_account)):
        if value:
            spec[key] = value
    if traits.automount_service_account_token is not None:
        spec["automountServiceAccountToken"] = traits.automount_service_account_token
    if traits.init_containers:
        spec["initContainers"] = [dict(c) for c in traits.init_containers]
    spec["containers"] = [container, *(dict(c) for c in traits.extra_containers)]
    volumes = [*spec["volumes"], *(dict(v) for v in traits.volumes)]
    if traits.ssl_secret:
        volumes.append({"name": SSL_VOLUME,
                        "secret": {"secretName": traits.ssl_secret, "defaultMode": 0o440}})
    spec["volumes"] = volumes
    _check_unique(volumes, "name", "volume", "volumes")
    _check_unique(spec["containers"] + spec.get("initContainers", []), "name",
                  "container name", "extra_containers")
    _merge(spec, traits.extra_pod_config, "extra_pod_config",
           {"containers": "the notebook container comes from the project"})
    return out
