"""LaunchSpec -> Docker Engine API ``POST /containers/create`` body (API 1.41+), pure.

The body is what ``docker.APIClient.create_container_from_config(body, name)`` sends, so
what the golden tests pin is exactly what the engine receives. Guarantees:

* the image is the spec's ``REPO@sha256:...``; the user is ``uid:gid`` (hardened);
* ``CapDrop: ["ALL"]``, ``no-new-privileges``, the engine's default seccomp profile (never
  ``unconfined`` unless the site turned it off), read-only root with tmpfs where the
  server writes, ``Privileged: false``, private IPC/PID/UTS/user namespaces (no ``host``
  mode anywhere), no Docker socket or other host path but the checked data sources;
* data mounts are read-only binds; workspace and home are named volumes;
* memory (no extra swap), CPU (``NanoCpus``) and ``PidsLimit`` come from the project;
* the network is the project's own bridge (``lockstep-<project>``);
* GPU requests come from ``gpu.render_gpu`` in the engine's mode; the isolation runtime is
  already resolved to an engine runtime name (``runtimes.engine_runtime``).

It must not talk to the engine, read files or look at ``os.environ``; keys are sorted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from spawner.docker.gpu import render_gpu
from spawner.launch.spec import LaunchSpec, Mount, parse_bytes

TMPFS_MODE = 0o1777


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


def render_mount(mount: Mount, *, labels: Mapping[str, str], nocopy: bool = False) -> dict:
    """One ``HostConfig.Mounts`` entry."""
    if mount.kind == "data":
        return {
            "Type": "bind",
            "Source": mount.source,
            "Target": mount.target,
            "ReadOnly": True,
            "BindOptions": {"Propagation": "rprivate"},
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


def volume_labels(spec: LaunchSpec, mount: Mount) -> dict[str, str]:
    """Labels for a named volume lockstep creates (cleanup and listing select on them)."""
    labels = {
        "org.lockstep.managed": "true",
        "org.lockstep.project": spec.project,
        "org.lockstep.volume": mount.kind,
    }
    if mount.kind == "home":
        labels["org.lockstep.user"] = spec.labels_dict().get("org.lockstep.user", "")
    return dict(sorted(labels.items()))


def render_host_config(spec: LaunchSpec, options: DockerOptions) -> dict:
    """The ``HostConfig`` part of the create body."""
    hard = spec.hardening
    security_opt = []
    if hard.no_new_privileges:
        security_opt.append("no-new-privileges:true")
    if not hard.seccomp_default:
        security_opt.append("seccomp=unconfined")
    memory = spec.resources.memory_bytes
    host: dict = {
        "CapDrop": ["ALL"] if hard.cap_drop_all else [],
        "SecurityOpt": security_opt,
        "ReadonlyRootfs": hard.read_only_root,
        "Privileged": False,
        "Mounts": [render_mount(m, labels=volume_labels(spec, m), nocopy=options.volume_nocopy)
                   for m in spec.mounts],
        "Memory": memory,
        "MemorySwap": memory,
        "NanoCpus": int(round(spec.resources.cpu * 1e9)),
        "PidsLimit": spec.resources.pids,
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
    return dict(sorted(host.items()))


def render_container(spec: LaunchSpec, options: DockerOptions = DockerOptions()) -> dict:
    """The complete create body for ``spec``."""
    env = {**spec.env_dict(), **dict(options.extra_env)}
    labels = {**spec.labels_dict(), **dict(options.extra_labels)}
    body: dict = {
        "Image": spec.image.reference,
        "Env": [f"{k}={v}" for k, v in sorted(env.items())],
        "Labels": dict(sorted(labels.items())),
        "ExposedPorts": {f"{options.port}/tcp": {}},
        "WorkingDir": options.working_dir or spec.home,
        "HostConfig": render_host_config(spec, options),
        "NetworkingConfig": {"EndpointsConfig": {spec.network: {}}},
    }
    if spec.hardening.run_as_non_root:
        body["User"] = f"{spec.uid}:{spec.gid}"
    if spec.command:
        body["Cmd"] = list(spec.command)
    return dict(sorted(body.items()))
