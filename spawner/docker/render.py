"""LaunchSpec -> Docker Engine API ``POST /containers/create`` body (API 1.41+), pure.

The body is what ``docker.APIClient.create_container_from_config(body, name)`` sends, so
what the golden tests pin is exactly what the engine receives. Guarantees:

* the image is the spec's ``REPO@sha256:...``; the user is ``uid:gid`` (hardened);
* ``CapDrop: ["ALL"]``, ``no-new-privileges``, the engine's default seccomp profile (never
  ``unconfined`` unless the site turned it off), read-only root with tmpfs where the
  server writes, ``Privileged: false``, private IPC/PID/UTS namespaces (no ``host`` mode
  anywhere), no Docker socket or other host path but the checked data sources. The user
  namespace is the engine's (``UsernsMode`` ''): uid 1000 in the container is uid 1000 on
  the host unless the daemon runs with ``userns-remap`` (``lockstep audit`` reports which,
  CIS 2.8); the container never runs as root, so this is defence in depth, not a promise;
* data mounts are read-only binds, recursively read-only where the engine can
  (``ReadOnlyForceRecursive``, API 1.44+; ``DockerOptions.recursive_read_only``; on older
  engines the caller refuses a source with submounts, ``spawner.docker.submounts``);
  workspace and home are named volumes;
* the log driver is ``json-file`` capped at ``LOG_MAX_SIZE`` x ``LOG_MAX_FILE`` (a server
  printing in a loop cannot fill the host's disk; the site may replace ``LogConfig``);
* memory (no extra swap), CPU (``NanoCpus``) and ``PidsLimit`` come from the project;
  ``Spawner.cpu_guarantee`` becomes ``CpuShares`` and ``mem_guarantee``
  ``MemoryReservation``, neither above its limit;
* the network is the project's own bridge (``lockstep-<project>``);
* GPU requests come from ``gpu.render_gpu`` in the engine's mode; the isolation runtime is
  already resolved to an engine runtime name (``runtimes.engine_runtime``);
* DockerSpawner's traits (``DockerOptions.inherited``, see ``spawner.docker.inherited``)
  are merged in: memory, CPU and pids limits take the smaller of project and site; mounts,
  ``SecurityOpt`` and ``CapDrop`` are added to lockstep's; ``Env`` and ``Labels`` go under
  lockstep's own (``LOCKSTEP_*``, ``JUPYTERHUB_*`` and ``org.lockstep.*`` cannot be
  replaced); any other key is the site's. What weakens hardening never gets here unless the
  site allowed it (the spawner refuses first). Two mounts on one target are a ValueError.

It must not talk to the engine, read files or look at ``os.environ``; keys are sorted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from spawner.docker.gpu import render_gpu
from spawner.docker.inherited import OWNED, Inherited
from spawner.labels import MANAGED, PROJECT, USER, VOLUME, is_lockstep_key
from spawner.launch.limitenv import limit_env
from spawner.launch.spec import LaunchSpec, Mount, parse_bytes, safe_slug

TMPFS_MODE = 0o1777
LOG_MAX_SIZE, LOG_MAX_FILE = "10m", "3"
LOG_CONFIG = {"Type": "json-file", "Config": {"max-size": LOG_MAX_SIZE, "max-file": LOG_MAX_FILE}}


@dataclass(frozen=True)
class DockerOptions:
    """Engine-specific choices the spawner makes for one container."""

    port: int = 8888
    gpu_mode: str = "none"
    runtime: str = ""
    init: bool = True
    extra_labels: tuple[tuple[str, str], ...] = ()
    extra_env: tuple[tuple[str, str], ...] = ()
    shm_size: str = "64Mi"
    working_dir: str = ""
    volume_nocopy: bool = False
    extra_host_config: tuple[tuple[str, object], ...] = field(default=())
    recursive_read_only: bool = False
    """The engine has ``BindOptions.ReadOnlyForceRecursive`` (API 1.44+)."""
    inherited: Inherited = field(default_factory=Inherited)
    """DockerSpawner's traits in API form (``inherited.from_traits``)."""


def render_mount(mount: Mount, *, labels: Mapping[str, str], nocopy: bool = False,
                 recursive: bool = False) -> dict:
    """One ``HostConfig.Mounts`` entry (``recursive``: the engine forces read-only onto
    every mount below a data bind)."""
    if mount.kind == "data":
        bind: dict = {"Propagation": "rprivate"}
        if recursive:
            bind["ReadOnlyForceRecursive"] = True
        return {
            "Type": "bind",
            "Source": mount.source,
            "Target": mount.target,
            "ReadOnly": True,
            "BindOptions": bind,
        }
    if mount.kind in ("workspace", "home"):
        return {
            "Type": "volume",
            "Source": mount.source,
            "Target": mount.target,
            "ReadOnly": mount.read_only,
            "VolumeOptions": {"NoCopy": nocopy, "Labels": dict(sorted(labels.items()))},
        }
    if mount.kind == "tmpfs":
        options: dict = {"Mode": TMPFS_MODE}
        if mount.size:
            options["SizeBytes"] = parse_bytes(mount.size)
        return {"Type": "tmpfs", "Target": mount.target, "TmpfsOptions": options}
    raise ValueError(f"unknown mount kind {mount.kind!r}")


def server_home_volume(project: str, user: str, server: str) -> str:
    """The home volume of a named server: ``lockstep-home-<project>_<user>_<server>``.

    '_' is in neither a project name (``[a-z0-9-]``) nor a ``safe_slug``, so two
    (project, user, server) triples never share a volume, and none is ever the name of an
    unnamed server's home (``lockstep-home-<project>_<user>``, one '_' fewer)."""
    return f"lockstep-home-{project}_{safe_slug(user)}_{safe_slug(server)}"


def for_server(spec: LaunchSpec, server: str) -> LaunchSpec:
    """``spec`` with its own home for named server ``server`` ('' = unchanged)."""
    if not server:
        return spec
    home = server_home_volume(spec.project, spec.user, server)
    mounts = tuple(replace(m, source=home) if m.kind == "home" else m for m in spec.mounts)
    return replace(spec, mounts=mounts)


def volume_labels(spec: LaunchSpec, mount: Mount) -> dict[str, str]:
    """Labels for a named volume lockstep creates (cleanup and listing select on them)."""
    labels = {MANAGED: "true", PROJECT: spec.project, VOLUME: mount.kind}
    if mount.kind == "home":
        labels[USER] = spec.labels_dict().get(USER, "")
    return dict(sorted(labels.items()))


def render_host_config(spec: LaunchSpec, options: DockerOptions) -> dict:
    """The ``HostConfig`` part of the create body."""
    hard = spec.hardening
    security_opt = []
    if hard.no_new_privileges:
        security_opt.append("no-new-privileges:true")
    if not hard.seccomp_default:
        security_opt.append("seccomp=unconfined")
    host: dict = {
        "CapDrop": ["ALL"] if hard.cap_drop_all else [],
        "SecurityOpt": security_opt,
        "ReadonlyRootfs": hard.read_only_root,
        "Privileged": False,
        "Mounts": [render_mount(m, labels=volume_labels(spec, m), nocopy=options.volume_nocopy,
                                recursive=options.recursive_read_only)
                   for m in spec.mounts],
        "LogConfig": {"Type": LOG_CONFIG["Type"], "Config": dict(LOG_CONFIG["Config"])},
        **render_limits(spec, options.inherited),
        "NetworkMode": spec.network,
        "IpcMode": "private",
        "PidMode": "",
        "UTSMode": "",
        "UsernsMode": "",
        "ShmSize": parse_bytes(options.shm_size),
        "Init": options.init,
        "RestartPolicy": {"Name": "no"},
        "AutoRemove": False,
        "PublishAllPorts": False,
    }
    if options.runtime:
        host["Runtime"] = options.runtime
    host.update(render_gpu(spec.gpu, options.gpu_mode))
    host.update(dict(options.extra_host_config))
    merge_host(host, options.inherited)
    return dict(sorted(host.items()))


LIMIT_KEYS = ("Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuQuota",
              "CpuPeriod", "PidsLimit")
LIST_KEYS = ("CapDrop", "SecurityOpt", "Mounts")


def _smallest(*values) -> int | None:
    given = [int(v) for v in values if v is not None and v > 0]
    return min(given) if given else None


def render_limits(spec: LaunchSpec, inherited: Inherited) -> dict:
    """Memory (no extra swap), CPU and pids: the smaller of the project's and the site's
    (``mem_limit``/``cpu_limit``/``mem_guarantee`` or the same keys in extra_host_config).
    ``cpu_guarantee`` becomes ``CpuShares`` (Docker reserves no CPU; shares weigh a
    container's CPU under contention): 1024 per guaranteed CPU, never above the limit; a
    ``cpu_shares`` in extra_host_config replaces it."""
    extra = inherited.host
    quota = extra.get("CpuQuota")
    quota_nanos = quota * 10**9 // (extra.get("CpuPeriod") or 100_000) if quota else None
    memory = _smallest(spec.resources.memory_bytes, inherited.memory, extra.get("Memory"))
    limits = {
        "Memory": memory,
        "MemorySwap": memory,
        "NanoCpus": _smallest(int(round(spec.resources.cpu * 1e9)), inherited.nano_cpus,
                              extra.get("NanoCpus"), quota_nanos),
        "PidsLimit": _smallest(spec.resources.pids, extra.get("PidsLimit")),
    }
    reservation = _smallest(inherited.memory_reservation, extra.get("MemoryReservation"))
    if reservation:
        limits["MemoryReservation"] = min(reservation, memory or reservation)
    guarantee = _smallest(inherited.nano_cpu_guarantee, limits["NanoCpus"])
    if inherited.nano_cpu_guarantee and guarantee:  # Docker's weight: 1024 per CPU, >= 2
        limits["CpuShares"] = max(2, guarantee * 1024 // 10**9)
    return limits


def merge_host(host: dict, inherited: Inherited) -> None:
    """Fold the site's ``extra_host_config`` and mounts into ``host`` (a fresh dict)."""
    for key, value in inherited.host.items():
        if key in LIMIT_KEYS:
            continue
        if key in LIST_KEYS:
            host[key] = host.get(key, []) + [v for v in value if v not in host.get(key, [])]
        else:
            host[key] = value
    host["Mounts"] = host["Mounts"] + [dict(m) for m in inherited.mounts]
    targets = [m["Target"] for m in host["Mounts"]]
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise ValueError(f"two mounts on {', '.join(twice)}: a DockerSpawner volumes/mounts "
                         "entry uses a target lockstep mounts itself; pick another target")


def render_container(spec: LaunchSpec, options: DockerOptions = DockerOptions()) -> dict:
    """The complete create body for ``spec``."""
    create = {k: v for k, v in options.inherited.create.items() if k not in OWNED}
    site_env = dict(str(e).split("=", 1) for e in create.pop("Env", []) if "=" in str(e))
    env = {**site_env, **spec.env_dict(), **dict(options.extra_env)}
    site_labels = {k: str(v) for k, v in (create.pop("Labels", None) or {}).items()
                   if not is_lockstep_key(k)}
    labels = {**site_labels, **spec.labels_dict(), **dict(options.extra_labels)}
    host = render_host_config(spec, options)
    env.update(limit_env(memory=host["Memory"], cpu=(host["NanoCpus"] or 0) / 1e9,
                         memory_guarantee=host.get("MemoryReservation"),
                         cpu_guarantee=host.get("CpuShares", 0) / 1024))
    body: dict = {
        "Image": spec.image.reference,
        "Env": [f"{k}={v}" for k, v in sorted(env.items())],
        "Labels": dict(sorted(labels.items())),
        "ExposedPorts": {f"{options.port}/tcp": {}},
        "WorkingDir": options.working_dir or spec.home,
        "HostConfig": host,
        "NetworkingConfig": {"EndpointsConfig": {spec.network: {}}},
    }
    if spec.hardening.run_as_non_root:
        body["User"] = f"{spec.uid}:{spec.gid}"
    if spec.command:
        body["Cmd"] = list(spec.command)
    body.update(create)
    return dict(sorted(body.items()))
