"""CIS Docker Benchmark, section 5 (container runtime), over ``docker inspect`` output, pure.

``audit_container(inspect, host=...)`` takes one container's ``docker inspect`` dict and
returns one ``Result`` per check, in CIS order; ``audit`` does the same for many
containers, sorted by container name. The checks, with their CIS ids (v1.2-v1.6 numbering):

====== ================== ===========================================================
5.1    apparmor           an AppArmor profile, not ``unconfined`` (n/a: host has none)
5.3    capabilities       ``CapDrop`` has ``ALL`` and ``CapAdd`` is empty; not privileged
5.4    privileged         ``Privileged`` is false
5.5    host-paths         no bind of ``/``, ``/boot``, ``/dev``, ``/etc``, ``/lib``,
                          ``/proc``, ``/sys``, ``/usr`` or anything under them
5.5    data-read-only     every bind mount is read-only (lockstep binds nothing but
                          project data, which it always mounts read-only)
5.7    privileged-ports   no host port below 1024 published
5.9    host-network       network namespace not the host's
5.10   memory             a memory limit
5.11   cpu                ``NanoCpus``, ``CpuQuota`` or ``CpuShares`` (other than the
                          default 1024) set
5.12   read-only-root     read-only root filesystem
5.14   restart-policy     ``no``, or ``on-failure`` with 1 to 5 retries (see below)
5.15   host-pid           PID namespace not the host's
5.16   host-ipc           IPC namespace not the host's
5.20   host-uts           UTS namespace not the host's
5.21   seccomp            not ``seccomp=unconfined``, not privileged, engine has seccomp
5.25   no-new-privileges  ``no-new-privileges`` set on the container
5.28   pids-limit         a positive ``PidsLimit``
5.30   host-userns        user namespace not the host's
5.31   docker-socket      no Docker/containerd socket (any ``*docker*.sock`` or
                          ``*containerd*.sock``, as source or target) and no host
                          folder holding the engine's sockets (``/run``, ``/var/run``, ...)
2.8    userns-remap       the daemon remaps user namespaces (n/a: it does not; a daemon
                          setting, shown for each container it concerns)
-      log-limits         the log is capped (``json-file`` with ``max-size``, ``local``)
                          or leaves the host; no CIS id
-      volume-size        named volumes are size-limited (n/a: Docker local volumes
                          cannot be; ``workspace.size`` is then not enforced); no CIS id
====== ================== ===========================================================

Statuses: ``pass``, ``fail``, ``n/a`` (the check cannot apply on this host) and
``exception``. The one exception is 5.14 for lockstep model services (label
``org.lockstep.kind=service``) with restart policy ``unless-stopped``, exactly what
``spawner.services.spec.docker_body`` renders: a service must come back after an engine restart
or a reboot and after any number of crashes over its life, which ``on-failure:5`` does not
give (Docker never resets its retry count, and a server that exits 0 on SIGTERM is not
restarted). What 5.14 guards against, a crash loop starving the host, is bounded by
Docker's restart back-off (doubling up to one minute) and the service's memory, CPU and
pids limits, which the other checks require. ``always`` is still a failure for services.
An exception does not make ``failed`` true; it is shown so nobody mistakes it for a pass.

Guarantees: no I/O, inputs are never mutated, results are deterministic. What the engine
does not show in ``inspect`` is not judged (e.g. a named volume created with
``o=bind,device=/etc``, or a daemon-wide ``no-new-privileges``): the audit is a check of
each container's own configuration.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from spawner.docker.cisbase import (  # noqa: F401  (re-exported: the audit's vocabulary)
    EXCEPTION,
    FAIL,
    NA,
    PASS,
    Check,
    HostFacts,
    Result,
    Verdict,
    binds,
    fail,
    host_config,
    host_facts,
    norm,
    ok,
    privileged,
    security_opts,
)
from spawner.labels import KIND as KIND_LABEL
from spawner.labels import PROJECT
from spawner.labels import ROLE as ROLE_LABEL

SENSITIVE_DIRS = ("/boot", "/dev", "/etc", "/lib", "/proc", "/sys", "/usr")
SOCKET_PATHS = (
    "/run/docker.sock", "/var/run/docker.sock",
    "/run/containerd/containerd.sock", "/var/run/containerd/containerd.sock",
    "/run/docker/containerd/containerd.sock", "/var/run/docker/containerd/containerd.sock",
)
SOCKET_RE = re.compile(r"(docker|containerd)[^/]*\.sock$")
DEFAULT_CPU_SHARES = 1024
MAX_RESTARTS = 5


# -- the checks ---------------------------------------------------------------------------

def check_apparmor(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    if not host.apparmor:
        return NA, "the host has no AppArmor (docker info lists no name=apparmor)"
    profile = str(info.get("AppArmorProfile") or "")
    if privileged(info) or security_opts(info).get("apparmor") == "unconfined" \
            or profile in ("", "unconfined"):
        return fail(f"AppArmor profile is {profile or 'empty'!r}; run with the engine's "
                     "docker-default profile (drop --security-opt apparmor=unconfined)")
    return ok(f"profile {profile}")


def check_capabilities(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    if privileged(info):
        return fail("privileged: the container has every capability")
    hc = host_config(info)
    added = sorted(str(c).upper().removeprefix("CAP_") for c in hc.get("CapAdd") or ())
    dropped = {str(c).upper().removeprefix("CAP_") for c in hc.get("CapDrop") or ()}
    problems = []
    if added:
        problems.append(f"adds {', '.join(added)}")
    if "ALL" not in dropped:
        problems.append("does not drop ALL (--cap-drop ALL)")
    return fail("; ".join(problems)) if problems else ok("CapDrop ALL, nothing added")


def check_privileged(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    return fail("runs --privileged") if privileged(info) else ok("Privileged=false")


def check_host_paths(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    bad = []
    for mount in binds(info):
        source = norm(str(mount.get("Source") or ""))
        if source == "/" or any(source == d or source.startswith(d + "/")
                                for d in SENSITIVE_DIRS):
            bad.append(f"{source} -> {mount.get('Destination')}")
    if bad:
        return fail(f"sensitive host path mounted: {', '.join(bad)}")
    return ok(f"{len(binds(info))} bind mount(s), none of {', '.join(('/',) + SENSITIVE_DIRS)}")


def check_data_read_only(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    writable = [f"{m.get('Source')} -> {m.get('Destination')}" for m in binds(info)
                if m.get("RW", True)]
    if writable:
        return fail(f"bind mount(s) writable: {', '.join(writable)}; lockstep binds only "
                     "data, always read-only")
    forced = [m for m in (host_config(info).get("Mounts") or [])
              if m.get("Type") == "bind" and (m.get("BindOptions") or {}).get(
                  "ReadOnlyForceRecursive")]
    how = ("recursively (ReadOnlyForceRecursive)" if forced and len(forced) == len(binds(info))
           else "not forced recursive (engine API < 1.44: a source with mounts below it is "
           "refused at start)")
    return ok(f"{len(binds(info))} bind mount(s), all read-only" +
               (f", {how}" if binds(info) else ""))


def _host_ports(info: Mapping[str, Any]) -> list[tuple[str, int]]:
    found = []
    published = [(host_config(info).get("PortBindings") or {}),
                 ((info.get("NetworkSettings") or {}).get("Ports") or {})]
    for table in published:
        for container_port, bindings in table.items():
            for binding in bindings or ():
                text = str(binding.get("HostPort") or "").split("-", 1)[0]
                if text.isdigit() and int(text) > 0:
                    found.append((container_port, int(text)))
    return sorted(set(found))


def check_privileged_ports(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    low = [f"{port} -> {target}" for target, port in _host_ports(info) if port < 1024]
    if low:
        return fail(f"privileged host port(s) published: {', '.join(low)}")
    return ok(", ".join(f"{port} -> {target}" for target, port in _host_ports(info))
               or "nothing published")


def _namespace(field: str, what: str) -> Callable[[Mapping[str, Any], HostFacts], Verdict]:
    def judge(info: Mapping[str, Any], host: HostFacts) -> Verdict:
        mode = str(host_config(info).get(field) or "")
        if mode == "host":
            return fail(f"{field}=host: shares the host's {what} namespace")
        return ok(f"{field}={mode or 'default'}")
    return judge


def check_memory(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    memory = int(host_config(info).get("Memory") or 0)
    return ok(f"{memory} bytes") if memory > 0 else fail("no memory limit (--memory)")


def check_cpu(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    hc = host_config(info)
    nano, quota = int(hc.get("NanoCpus") or 0), int(hc.get("CpuQuota") or 0)
    shares = int(hc.get("CpuShares") or 0)
    if nano > 0:
        return ok(f"NanoCpus={nano}")
    if quota > 0:
        return ok(f"CpuQuota={quota}")
    if shares > 0 and shares != DEFAULT_CPU_SHARES:
        return ok(f"CpuShares={shares}")
    return fail("no CPU limit (--cpus, --cpu-quota or --cpu-shares other than 1024)")


def check_read_only_root(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    if host_config(info).get("ReadonlyRootfs"):
        return ok("ReadonlyRootfs=true")
    return fail("root filesystem writable (--read-only)")


def check_restart_policy(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    policy = host_config(info).get("RestartPolicy") or {}
    name = str(policy.get("Name") or "no")
    retries = int(policy.get("MaximumRetryCount") or 0)
    if name == "no":
        return ok("no")
    if name == "on-failure" and 0 < retries <= MAX_RESTARTS:
        return ok(f"on-failure:{retries}")
    labels = (info.get("Config") or {}).get("Labels") or {}
    if name == "unless-stopped" and labels.get(KIND_LABEL) == "service":
        return EXCEPTION, ("unless-stopped: lockstep model service, which must outlive engine "
                           "restarts and crashes; bounded by back-off and its limits")
    shown = f"{name}:{retries or 'unlimited'}" if name == "on-failure" else name
    return fail(f"restart policy {shown}; use on-failure:{MAX_RESTARTS} or no")


def check_seccomp(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    if not host.seccomp:
        return fail("the engine has no seccomp support: every container runs unconfined")
    if privileged(info):
        return fail("privileged: the engine applies no seccomp profile")
    profile = security_opts(info).get("seccomp", "")
    if profile == "unconfined":
        return fail("seccomp=unconfined")
    return ok(f"profile {profile or 'default'}")


def check_no_new_privileges(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    opts = security_opts(info)
    if "no-new-privileges" in opts and opts["no-new-privileges"] in ("", "true"):
        return ok("no-new-privileges:true")
    return fail("no-new-privileges not set (--security-opt no-new-privileges:true)")


def check_pids_limit(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    limit = int(host_config(info).get("PidsLimit") or 0)
    return ok(str(limit)) if limit > 0 else fail("no pids limit (--pids-limit)")


DISK_LOG_DRIVERS = ("json-file", "local")  # the drivers that write under the engine's root


def check_log_limits(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    """A container's log cannot fill the host's disk: ``json-file`` with ``max-size``,
    ``local`` (rotates by itself) or a driver that ships logs off the host."""
    log = host_config(info).get("LogConfig")
    if not log:
        return NA, "the engine did not show LogConfig"
    driver, config = log.get("Type") or "json-file", log.get("Config") or {}
    if driver == "json-file" and not config.get("max-size"):
        return fail("json-file log without max-size: it grows until the disk is full; "
                     "lockstep renders max-size/max-file (spawner.docker.render.LOG_CONFIG)")
    if driver in DISK_LOG_DRIVERS:
        return ok(f"{driver}, max-size {config.get('max-size', 'default')} x "
                   f"{config.get('max-file', 'default')} files")
    return ok(f"log driver {driver}: not kept on the engine's disk")


def check_userns_remap(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    """CIS 2.8 (a daemon setting, shown per container): uids are remapped."""
    if host.userns:
        return ok("the daemon remaps user namespaces (userns-remap)")
    return NA, ("the daemon runs without userns-remap: uid 1000 in the container is uid "
                "1000 on the host (lockstep never runs the container as root)")


def check_volume_size(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    """Whether the container's named volumes are size-limited (``workspace.size``)."""
    volumes = [m for m in info.get("Mounts") or () if m.get("Type") == "volume"]
    if not volumes:
        return ok("no named volumes")
    local = [str(m.get("Name") or m.get("Destination")) for m in volumes
             if (m.get("Driver") or "local") == "local"]
    if local:
        return NA, (f"{', '.join(local)}: Docker local volumes have no size limit (xfs "
                    "project quotas or a sizing volume driver needed); workspace.size is not "
                    "enforced on this engine")
    return ok("every named volume is on a driver that sizes it")


def _exposes_socket(path: str) -> bool:
    if not path:
        return False
    if SOCKET_RE.search(path):
        return True
    return path == "/" or any(s == path or s.startswith(path + "/") for s in SOCKET_PATHS)


def check_docker_socket(info: Mapping[str, Any], host: HostFacts) -> Verdict:
    bad = []
    for mount in binds(info):
        source = norm(str(mount.get("Source") or ""))
        target = norm(str(mount.get("Destination") or ""))
        if _exposes_socket(source) or SOCKET_RE.search(target):
            bad.append(f"{source} -> {target}")
    return fail(f"engine socket reachable: {', '.join(bad)}") if bad else ok("none mounted")


CHECKS: tuple[Check, ...] = (
    Check("5.1", "apparmor", check_apparmor),
    Check("5.3", "capabilities", check_capabilities),
    Check("5.4", "privileged", check_privileged),
    Check("5.5", "host-paths", check_host_paths),
    Check("5.5", "data-read-only", check_data_read_only),
    Check("5.7", "privileged-ports", check_privileged_ports),
    Check("5.9", "host-network", _namespace("NetworkMode", "network")),
    Check("5.10", "memory", check_memory),
    Check("5.11", "cpu", check_cpu),
    Check("5.12", "read-only-root", check_read_only_root),
    Check("5.14", "restart-policy", check_restart_policy),
    Check("5.15", "host-pid", _namespace("PidMode", "PID")),
    Check("5.16", "host-ipc", _namespace("IpcMode", "IPC")),
    Check("5.20", "host-uts", _namespace("UTSMode", "UTS")),
    Check("5.21", "seccomp", check_seccomp),
    Check("5.25", "no-new-privileges", check_no_new_privileges),
    Check("5.28", "pids-limit", check_pids_limit),
    Check("5.30", "host-userns", _namespace("UsernsMode", "user")),
    Check("5.31", "docker-socket", check_docker_socket),
    Check("2.8", "userns-remap", check_userns_remap),
    Check("-", "log-limits", check_log_limits),
    Check("-", "volume-size", check_volume_size),
)


def container_kind(labels: Mapping[str, str]) -> str:
    """``job``/``service`` (kind label), a helper's role (``volume-init``...), or ``server``."""
    return labels.get(KIND_LABEL) or labels.get(ROLE_LABEL) or "server"


def audit_container(info: Mapping[str, Any], *, host: HostFacts) -> list[Result]:
    """One ``Result`` per check in ``CHECKS`` for the container ``info`` describes."""
    labels = (info.get("Config") or {}).get("Labels") or {}
    name = str(info.get("Name") or "").lstrip("/") or str(info.get("Id", ""))[:12]
    base = {"container": name, "id": str(info.get("Id", ""))[:12],
            "project": labels.get(PROJECT, ""), "kind": container_kind(labels)}
    results = []
    for check in CHECKS:
        status, detail = check.judge(info, host)
        results.append(Result(cis=check.cis, check=check.name, status=status, detail=detail,
                              **base))
    return results


def audit(infos: Iterable[Mapping[str, Any]], *, host: HostFacts) -> list[Result]:
    """``audit_container`` for each container, sorted by container name (checks in CIS order)."""
    ordered = sorted(infos, key=lambda i: (str(i.get("Name") or ""), str(i.get("Id") or "")))
    return [r for info in ordered for r in audit_container(info, host=host)]


def failures(results: Iterable[Result]) -> list[Result]:
    return [r for r in results if r.status == FAIL]
