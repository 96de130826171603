"""Read KubeSpawner's pod traits (from a spawner or from the hub's config) as plain data.

KubeSpawner accepts several shapes for one trait: a list or a dict of entries (sorted by
key, as KubeSpawner sorts them), snake_case or camelCase keys. This module turns either
into the camelCase Kubernetes JSON that ``spawner.kube.podtraits`` merges and
``spawner.kube.hardening`` checks, so the check at hub start (:func:`check_config`, from
the Config alone) and the check at each spawn see the same values.

No I/O and no cluster: it reads trait values and config sections only. It must not render
pods (``render``/``podtraits``) nor decide what weakens hardening (``hardening``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from spawner.kube import hardening, parentaudit
from spawner.kube.podtraits import PodTraits, camel_keys

LIST_TRAITS = {  # trait -> kubernetes model of each entry (for camelCase keys)
    "tolerations": "V1Toleration", "init_containers": "V1Container",
    "extra_containers": "V1Container", "volumes": "V1Volume",
    "volume_mounts": "V1VolumeMount", "node_affinity_required": "V1NodeSelectorTerm",
    "node_affinity_preferred": "V1PreferredSchedulingTerm",
    "pod_affinity_required": "V1PodAffinityTerm",
    "pod_affinity_preferred": "V1WeightedPodAffinityTerm",
    "pod_anti_affinity_required": "V1PodAffinityTerm",
    "pod_anti_affinity_preferred": "V1WeightedPodAffinityTerm",
}
DICT_TRAITS = {"extra_pod_config": "V1PodSpec", "extra_container_config": "V1Container",
               "lifecycle_hooks": "V1Lifecycle"}
PLAIN_TRAITS = ("node_selector", "scheduler_name", "priority_class_name", "service_account",
                "automount_service_account_token", "extra_resource_limits",
                "extra_resource_guarantees", "uid", "gid", "fs_gid", "supplemental_gids",
                "container_security_context", "pod_security_context", "privileged",
                "allow_privilege_escalation", "working_dir")
TRAITS = (*LIST_TRAITS, *DICT_TRAITS, *PLAIN_TRAITS)
CHECKED = (*TRAITS, *parentaudit.REFUSABLE)  # what :func:`check` reads from a spawner
LIMITS = ("cpu_limit", "mem_limit", "cpu_guarantee", "mem_guarantee")  # render.KubeOptions
EXPANDED = ("volumes", "volume_mounts", "init_containers", "extra_containers",
            "extra_pod_config", "service_account")  # {username} etc., as KubeSpawner does


def _entries(value: Any) -> list[Any]:
    if isinstance(value, Mapping):  # KubeSpawner sorts dict-valued lists by key
        return [value[k] for k in sorted(value)]
    return list(value or [])


def plain(value: Any) -> Any:
    """``value`` with kubernetes client models as API JSON, recursively: Zero to
    JupyterHub appends a ``V1Container`` (its cloud-metadata block) to ``init_containers``."""
    if hasattr(value, "openapi_types") and hasattr(value, "attribute_map"):
        return {value.attribute_map[k]: plain(getattr(value, k)) for k in value.openapi_types
                if getattr(value, k) is not None}
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def normalize(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Trait name -> value as Kubernetes JSON; callables are kept as they are (the caller
    resolves them per spawn) and absent/None traits are left out."""
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if value is None or callable(value):
            out[name] = value
        elif name in LIST_TRAITS:
            out[name] = [camel_keys(e, LIST_TRAITS[name]) if isinstance(e, Mapping) else e
                         for e in map(plain, _entries(value))]
        elif name in DICT_TRAITS:
            out[name] = camel_keys(plain(value), DICT_TRAITS[name])
        else:
            out[name] = value
    return out


def config_values(config, cls: type) -> dict[str, Any]:
    """The traits' values set in ``config`` for ``cls``, as traitlets would resolve them
    (a subclass's section wins over its parents'), without constructing a spawner."""
    from traitlets.config import Configurable

    values: dict[str, Any] = {}
    for klass in reversed(cls.mro()):
        if isinstance(klass, type) and issubclass(klass, Configurable):
            if klass.__name__ not in config:
                continue
            section = config[klass.__name__]
            values.update({k: section[k] for k in (*TRAITS, *parentaudit.REFUSABLE,
                                                   "hardening_exceptions") if k in section})
    return values


def check(values: Mapping[str, Any], exceptions, log=None) -> None:
    """Refuse weakening ``values`` (:class:`hardening.HardeningRefused`) and settings lockstep
    cannot honour (``parentaudit.KubeSettingRefused``, also a ``HardeningRefused``); log
    the excepted weakenings."""
    parentaudit.check({k: values[k] for k in parentaudit.REFUSABLE if k in values})
    allowed = hardening.refuse(hardening.trait_findings(normalize(values)), exceptions)
    for finding in allowed:
        if log is not None:
            log.warning("lockstep: hardening exception %s: %s", finding.trait, finding.what)


def check_config(config, cls: type) -> None:
    """The hub-start check: call it at the end of ``jupyterhub_config.py`` so a weakening
    trait stops the hub with its name (``HardeningRefused``) instead of failing (or running)
    each spawn, and a trait set to a value lockstep cannot honour
    (``spawner.kube.parentaudit``) stops it too (``SettingRefused``, with both messages)."""
    values = config_values(config, cls)
    settings = parentaudit.refusal({k: values[k] for k in parentaudit.REFUSABLE
                                    if k in values})
    try:
        check({k: v for k, v in values.items()
               if k in TRAITS}, values.get("hardening_exceptions") or ())
    except hardening.HardeningRefused as exc:
        if settings:
            raise parentaudit.KubeSettingRefused(f"{settings}\n{exc}") from None
        raise
    if settings:
        raise parentaudit.KubeSettingRefused(settings)


def pod_traits(values: Mapping[str, Any], *, env_refs: Mapping[str, Mapping[str, Any]],
               ssl_secret: str = "", ssl_mount_path: str = "/etc/jupyterhub/ssl/",
               expand: Callable[[Any], Any] = lambda v: v) -> PodTraits:
    """:class:`PodTraits` from resolved (not callable) trait ``values``."""
    v = normalize({k: expand(x) if k in EXPANDED else x for k, x in values.items()})
    tuples = {k: tuple(v.get(k) or ()) for k in LIST_TRAITS}
    return PodTraits(
        **tuples,
        node_selector=dict(v.get("node_selector") or {}),
        scheduler_name=v.get("scheduler_name") or "",
        priority_class_name=v.get("priority_class_name") or "",
        service_account=v.get("service_account") or "",
        automount_service_account_token=v.get("automount_service_account_token"),
        extra_pod_config=dict(v.get("extra_pod_config") or {}),
        extra_container_config=dict(v.get("extra_container_config") or {}),
        lifecycle_hooks=dict(v.get("lifecycle_hooks") or {}),
        extra_resource_limits=dict(v.get("extra_resource_limits") or {}),
        extra_resource_guarantees=dict(v.get("extra_resource_guarantees") or {}),
        env_refs=dict(env_refs), uid=v.get("uid"), gid=v.get("gid"), fs_gid=v.get("fs_gid"),
        supplemental_gids=tuple(v.get("supplemental_gids") or ()),
        container_security_context=dict(v.get("container_security_context") or {}),
        pod_security_context=dict(v.get("pod_security_context") or {}),
        ssl_secret=ssl_secret, ssl_mount_path=ssl_mount_path,
        working_dir=v.get("working_dir") or "",
    )
