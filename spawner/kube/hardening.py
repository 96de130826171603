"""Which KubeSpawner traits would weaken lockstep's pod hardening, named so a hub refuses them.

lockstep's pods run as uid 1000, non-root, with every capability dropped, no privilege
escalation, seccomp ``RuntimeDefault``, no host namespaces and no host paths but the
site's own data mounts. KubeSpawner traits that would undo one of those are refused when
the hub starts, each with the trait, the setting and the fix, unless the site names the
trait in ``c.LockstepKubeSpawner.hardening_exceptions``. The same checks run on the final
pod after ``modify_pod_hook`` (and callable traits), so code cannot do what config may not.

Pure: functions of plain values; no I/O, no traitlets. It must not change a pod (that is
``spawner.kube.podtraits``) and must not decide access (``spawner.launch.access``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

OVERRIDE = "c.LockstepKubeSpawner.hardening_exceptions"
WEAKENING_TRAITS = (
    "allow_privilege_escalation", "automount_service_account_token", "container_security_context",
    "extra_container_config", "extra_containers", "extra_pod_config", "init_containers",
    "pod_security_context", "privileged", "uid", "volumes",
)
HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")


class HardeningRefused(ValueError):
    """Site configuration that would weaken the pod's hardening (the message names it)."""


@dataclass(frozen=True, order=True)
class Weakening:
    """One setting that weakens the pod: which trait asks for it, where, and what."""

    trait: str
    path: str
    what: str

    def message(self) -> str:
        return (f"c.KubeSpawner.{self.trait} would weaken lockstep's pod hardening: "
                f"{self.what} (at {self.path}). Remove it, or accept the risk explicitly "
                f"with {OVERRIDE} = [{self.trait!r}]")


def container_findings(container: Mapping[str, Any], path: str,
                       notebook: bool = False) -> list[tuple[str, str]]:
    """(path, what) for each weakening setting of one container."""
    sc = dict(container.get("securityContext") or {})
    found = []
    checks = (("privileged", True, "privileged: true"),
              ("allowPrivilegeEscalation", True, "allowPrivilegeEscalation: true"),
              ("runAsUser", 0, "runAsUser: 0 (root)"),
              ("runAsNonRoot", False, "runAsNonRoot: false"),
              ("procMount", "Unmasked", "procMount: Unmasked"))
    for key, bad, what in checks:
        if key in sc and sc[key] == bad and type(sc[key]) is type(bad):
            found.append((f"{path}.securityContext.{key}", what))
    if (sc.get("capabilities") or {}).get("add"):
        found.append((f"{path}.securityContext.capabilities.add",
                      f"adds capabilities {list(sc['capabilities']['add'])}"))
    if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append((f"{path}.securityContext.seccompProfile", "seccomp Unconfined"))
    if notebook and sc.get("readOnlyRootFilesystem") is False:
        found.append((f"{path}.securityContext.readOnlyRootFilesystem",
                      "a writable root filesystem"))
    return found


def pod_context_findings(psc: Mapping[str, Any], path: str) -> list[tuple[str, str]]:
    """(path, what) for the pod-level security context."""
    found = []
    if psc.get("runAsUser") == 0 and type(psc["runAsUser"]) is int:
        found.append((f"{path}.runAsUser", "runAsUser: 0 (root)"))
    if psc.get("runAsNonRoot") is False:
        found.append((f"{path}.runAsNonRoot", "runAsNonRoot: false"))
    if (psc.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append((f"{path}.seccompProfile", "seccomp Unconfined"))
    return found


def volume_findings(volumes: Iterable[Mapping[str, Any]], path: str,
                    allowed_host_paths: Iterable[str] = ()) -> list[tuple[str, str]]:
    allowed = set(allowed_host_paths)
    return [(f"{path}[{v.get('name', i)}]", f"hostPath volume {v['hostPath'].get('path')!r}")
            for i, v in enumerate(volumes)
            if "hostPath" in v and v.get("name") not in allowed]


def pod_findings(pod: Mapping[str, Any], allowed_host_paths: Iterable[str] = ()
                 ) -> list[tuple[str, str]]:
    """Every weakening in a whole pod (the final check, after hooks)."""
    spec = pod.get("spec") or {}
    found = [(f"spec.{k}", f"{k}: true") for k in HOST_NAMESPACES if spec.get(k) is True]
    found += pod_context_findings(spec.get("securityContext") or {}, "spec.securityContext")
    found += volume_findings(spec.get("volumes") or [], "spec.volumes", allowed_host_paths)
    if spec.get("automountServiceAccountToken") is not False:
        found.append(("spec.automountServiceAccountToken", "the API token is mounted"))
    for kind in ("containers", "initContainers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(kind) or []):
            found += container_findings(c, f"spec.{kind}[{i}]",
                                        notebook=kind == "containers" and i == 0)
    return sorted(found)


def trait_findings(values: Mapping[str, Any]) -> list[Weakening]:
    """Weakenings asked for by KubeSpawner trait ``values`` (camelCase Kubernetes JSON;
    callables are skipped here and caught by :func:`pod_findings` on the final pod)."""
    out: list[Weakening] = []

    def add(trait: str, pairs: Iterable[tuple[str, str]]) -> None:
        out.extend(Weakening(trait, path, what) for path, what in pairs)

    notebook = "spec.containers[0]"
    if values.get("privileged") is True:
        add("privileged", [(f"{notebook}.securityContext.privileged", "privileged: true")])
    if values.get("allow_privilege_escalation") is True:
        add("allow_privilege_escalation", [(f"{notebook}.securityContext",
                                            "allowPrivilegeEscalation: true")])
    if values.get("uid") == 0 and type(values["uid"]) is int:
        add("uid", [(f"{notebook}.securityContext.runAsUser", "runAsUser: 0 (root)")])
    if values.get("automount_service_account_token") is True:
        add("automount_service_account_token", [("spec.automountServiceAccountToken",
                                                 "the API token is mounted in the pod")])
    csc = values.get("container_security_context")
    if isinstance(csc, Mapping):
        add("container_security_context",
            container_findings({"securityContext": csc}, notebook, notebook=True))
    psc = values.get("pod_security_context")
    if isinstance(psc, Mapping):
        add("pod_security_context", pod_context_findings(psc, "spec.securityContext"))
    add("extra_container_config",
        container_findings(values.get("extra_container_config") or {}, notebook, True))
    extra_pod = dict(values.get("extra_pod_config") or {})
    add("extra_pod_config", pod_findings({"spec": {"automountServiceAccountToken": False,
                                                   **extra_pod}}))
    add("volumes", volume_findings(values.get("volumes") or (), "spec.volumes"))
    for trait, kind in (("init_containers", "initContainers"),
                        ("extra_containers", "containers")):
        for i, c in enumerate(values.get(trait) or ()):
            add(trait, container_findings(c, f"spec.{kind}[{c.get('name', i)}]"))
    return sorted(out)


def refuse(findings: Iterable[Weakening], exceptions: Iterable[str] = ()) -> list[Weakening]:
    """Raise :class:`HardeningRefused` for findings not excepted; return the excepted ones
    (the caller logs them as warnings)."""
    allowed = set(exceptions)
    findings = sorted(set(findings))
    refused = [f for f in findings if f.trait not in allowed]
    if refused:
        raise HardeningRefused("; ".join(f.message() for f in refused))
    return findings
