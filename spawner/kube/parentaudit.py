"""Every configurable trait of ``KubeSpawner`` and ``Spawner``: what the Kubernetes spawner does.

The audit (``spawner.traitaudit``) for ``LockstepKubeSpawner``, the twin of
``spawner.docker.parentaudit``: each trait is honoured, refused when set to a value
lockstep cannot honour (:func:`check`, at hub start through
``spawner.kube.sitetraits.check_config``, when a spawner is made and after a profile's
``kubespawner_override`` is applied), or not applicable with the reason.
``tests/unit/kube/test_parentaudit.py`` fails when the installed KubeSpawner or JupyterHub
has a configurable trait that is not here.

Pod traits that could weaken hardening (``privileged``, ``extra_pod_config``...) are
honoured here: what would weaken in them is refused by ``spawner.kube.hardening`` with its
own override (``c.LockstepKubeSpawner.hardening_exceptions``).

Pure data and pure functions; it must not read the cluster, render pods or import docker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spawner import traitaudit
from spawner.kube.hardening import HardeningRefused
from spawner.traitaudit import (
    REFUSED,
    Entry,
    SettingRefused,
    honoured,
    not_applicable,
    refusal_lines,
    refusal_message,
    refused,
)

K, S = "KubeSpawner", "Spawner"
OWN = "KubeSpawner's own code, which lockstep's spawner runs unchanged"
POD = "merged into the pod (spawner.kube.podtraits)"
WEAKENING = (
    "; a value that weakens hardening is refused at hub start, naming it, unless "
    "c.LockstepKubeSpawner.hardening_exceptions lists it"
)
FORM = (
    "lockstep's spawn form (project x stage) replaces KubeSpawner's profile form; a "
    "profile is chosen with user_options['profile'] (the default profile applies "
    "otherwise)"
)
STORAGE = (
    "KubeSpawner's own home claim, created when storage_pvc_ensure is True; mount it "
    "with volumes/volume_mounts away from lockstep's paths (/home/jovyan is "
    "lockstep's per-project home)"
)
NAMESPACES = "read only with enable_user_namespaces, which is refused"

AUDIT: dict[str, Entry] = {
    # -- KubeSpawner ---------------------------------------------------------------------
    "image": not_applicable(
        K,
        "lockstep replaces it at each spawn by the chosen stage's "
        "digest (also over a profile's kubespawner_override); Zero to "
        "JupyterHub always sets it (its pre-puller pulls it), so it "
        "is not refused",
    ),
    "profile_form_template": refused(K, FORM, lambda v: not v),
    "additional_profile_form_template_paths": refused(K, FORM, lambda v: not v),
    "enable_user_namespaces": refused(
        K,
        "lockstep keeps every project's shared workspace claim, the data claims and its "
        "NetworkPolicies in one namespace (c.KubeSpawner.namespace); a namespace per "
        "user would give each user a separate 'shared' workspace",
        lambda v: v is False,
    ),
    "user_namespace_template": not_applicable(K, NAMESPACES),
    "user_namespace_labels": not_applicable(K, NAMESPACES),
    "user_namespace_annotations": not_applicable(K, NAMESPACES),
    "profile_list": honoured(
        K,
        "KubeSpawner applies the chosen (or default) profile's "
        "kubespawner_override once per start; its image is replaced "
        "by the stage's digest and a weakening override is refused "
        "at spawn; " + FORM,
    ),
    "working_dir": honoured(
        K, "the notebook container's workingDir (lockstep's default: the home)"
    ),
    "image_pull_policy": honoured(K, "the notebook container's imagePullPolicy"),
    "image_pull_secrets": honoured(K, "the pod's imagePullSecrets"),
    "cmd": honoured(K, "the server's command (lockstep's default: jupyterhub-singleuser)"),
    "modify_pod_hook": honoured(
        K, "runs on lockstep's pod; a hook that weakens the pod is refused at spawn, naming it"
    ),
    "after_pod_created_hook": honoured(K, OWN),
    "volumes": honoured(K, POD + " (a name lockstep uses is refused at spawn)" + WEAKENING),
    "volume_mounts": honoured(K, POD + " (a path lockstep mounts is refused at spawn)"),
    "extra_pod_config": honoured(K, POD + " (containers are lockstep's)" + WEAKENING),
    "extra_container_config": honoured(
        K, POD + " (name and image are lockstep's; lists are extended)" + WEAKENING
    ),
    "extra_containers": honoured(K, POD + WEAKENING),
    "init_containers": honoured(K, POD + WEAKENING),
    "extra_resource_limits": honoured(K, POD + " (the project's cpu, memory and GPU win)"),
    "extra_resource_guarantees": honoured(K, POD + " (the project's requests win)"),
    **{
        name: honoured(K, POD + WEAKENING)
        for name in (
            "privileged",
            "allow_privilege_escalation",
            "uid",
            "container_security_context",
            "pod_security_context",
            "automount_service_account_token",
        )
    },
    **{
        name: honoured(K, POD)
        for name in (
            "gid",
            "fs_gid",
            "supplemental_gids",
            "lifecycle_hooks",
            "node_selector",
            "tolerations",
            "node_affinity_required",
            "node_affinity_preferred",
            "pod_affinity_required",
            "pod_affinity_preferred",
            "pod_anti_affinity_required",
            "pod_anti_affinity_preferred",
            "scheduler_name",
            "priority_class_name",
            "service_account",
        )
    },
    **{
        name: honoured(K, "the pod's labels and annotations (lockstep's org.lockstep.* keys win)")
        for name in ("common_labels", "component_label", "extra_labels", "extra_annotations")
    },
    **{
        name: honoured(K, STORAGE)
        for name in (
            "storage_pvc_ensure",
            "pvc_name_template",
            "remember_pvc_name",
            "storage_access_modes",
            "storage_capacity",
            "storage_class",
            "storage_extra_annotations",
            "storage_extra_labels",
            "storage_selector",
        )
    },
    "secret_mount_path": honoured(K, "internal_ssl: where the certificates Secret is mounted"),
    "secret_name_template": honoured(K, "internal_ssl: the certificates Secret's name"),
    **{
        name: honoured(K, OWN)
        for name in (
            "delete_grace_period",
            "delete_pvc",
            "delete_stopped_pods",
            "dns_name_template",
            "services_enabled",
            "events_enabled",
            "get_pod_url",
            "handle_legacy_names",
            "hub_connect_ip",
            "hub_connect_port",
            "ip",
            "k8s_api_host",
            "k8s_api_request_retry_timeout",
            "k8s_api_request_timeout",
            "k8s_api_ssl_ca_cert",
            "k8s_api_threadpool_workers",
            "k8s_api_verify_ssl",
            "namespace",
            "pod_connect_ip",
            "pod_name_template",
            "slug_scheme",
            "slow_spawn_message",
            "slow_spawn_message_frequency",
            "slow_spawn_message_threshold",
        )
    },
    # -- Spawner -------------------------------------------------------------------------
    "cpu_limit": honoured(
        S, "the CPU limit is the smaller of the project's `resources.cpu` and this"
    ),
    "mem_limit": honoured(
        S, "the memory limit is the smaller of the project's `resources.memory` and this"
    ),
    "cpu_guarantee": honoured(
        S,
        "the CPU request: this, unless the project asks for more "
        "(`resources.cpu` x cpu_request_fraction), never above the "
        "limit",
    ),
    "mem_guarantee": honoured(
        S,
        "the memory request: this, unless the project asks for more "
        "(`resources.memory` x memory_request_fraction), never "
        "above the limit (Zero to JupyterHub sets 1G)",
    ),
    "environment": honoured(
        S,
        "the server's environment under lockstep's own variables; "
        "valueFrom entries stay references",
    ),
    "apply_user_options": honoured(
        S,
        "lockstep's default checks user_options before start; "
        "a site's own hook replaces that early check (start "
        "still refuses a malformed request)",
    ),
    "args": honoured(S, "appended to the server's command"),
    "port": honoured(S, "the notebook container's port"),
    "options_form": honoured(
        S,
        "lockstep's default is its project x stage form; a site's own form must send project/stage",
    ),
    "options_from_form": honoured(
        S, "lockstep's default reads its own form; a site's own replaces it"
    ),
    **{
        name: honoured(S, "passed to the server by JupyterHub (get_env/get_args)")
        for name in (
            "env_keep",
            "default_url",
            "notebook_dir",
            "disable_user_config",
            "debug",
            "hub_connect_url",
        )
    },
    **traitaudit.hub_applied(),
    **traitaudit.hub_applied(("ssl_alt_names", "ssl_alt_names_include_local")),
}
REFUSABLE = tuple(sorted(name for name, entry in AUDIT.items() if entry.verdict == REFUSED))


class KubeSettingRefused(SettingRefused, HardeningRefused):
    """``SettingRefused`` that the spawner's hardening-refusal path handles too (a 500 naming
    the trait at spawn, as for a weakening profile override)."""


def refusal(values: Mapping[str, Any]) -> str:
    """'' when lockstep honours every value in ``values`` (trait -> value, as set in the
    config or on a spawner); else the message naming each refused one."""
    return refusal_message(refusal_lines(AUDIT, values), "KubeSpawner")


def check(values: Mapping[str, Any]) -> None:
    """Raise :class:`KubeSettingRefused` when :func:`refusal` has a message."""
    message = refusal(values)
    if message:
        raise KubeSettingRefused(message)
