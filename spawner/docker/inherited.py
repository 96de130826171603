"""DockerSpawner's own traits on a lockstep server: merged into the create body, or refused.

A site that moves from DockerSpawner keeps its ``jupyterhub_config.py``. Each parent trait
either keeps its meaning (``mem_limit``, ``cpu_limit``, ``mem_guarantee``,
``cpu_guarantee``, ``extra_host_config``, ``extra_create_kwargs``, ``volumes``,
``read_only_volumes``, ``mounts``, ``links``, ``environment``; ``post_start_cmd`` and
``pull_policy`` are honoured by the spawner itself) or, where it would weaken the hardening
lockstep promises, stops the hub at start with a message naming the trait and the override
that allows it (``c.LockstepDockerSpawner.allow_weakening``). Limits combine with
``project.yaml``: the smaller one wins, so neither the site nor a project owner can raise
the other's cap. Traits lockstep cannot honour at all (``image``, ``remove=False``...) are
refused by ``spawner.docker.parentaudit``, the audit of every parent trait.

Guarantees: :func:`from_traits` and :func:`weakenings` are pure (docker-py's keyword
spellings are read by ``engine.api_form``, which calls no engine); every weakening found is
reported at once, each with its override name from :data:`WEAKENINGS`. This module must not
talk to the engine, read files or decide what the spawner does with a refusal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spawner.docker.engine import api_form
from spawner.errors import LockstepError

WEAKENINGS = {
    "privileged": "Privileged: true (every device and every capability of the host)",
    "root": "running the server as root (user 0 or 'root')",
    "cap_add": "added Linux capabilities (cap_add)",
    "host_network": "the host's or another container's network namespace",
    "network": "another network than the project's own, shared with other projects",
    "host_pid": "the host's or another container's PID namespace",
    "host_ipc": "the host's or another container's IPC namespace",
    "host_uts": "the host's UTS namespace",
    "host_userns": "the host's user namespace",
    "host_cgroupns": "the host's cgroup namespace",
    "security_opt": "security_opt that turns off seccomp, AppArmor, SELinux labels or "
                    "no-new-privileges",
    "devices": "host devices (devices, device_requests, device_cgroup_rules)",
    "host_bind": "host paths bound into the server (volumes/read_only_volumes/mounts from "
                 "a host path, binds); project data belongs in project.yaml 'data:'",
    "writable_root": "a writable root filesystem (read_only: false)",
    "cap_drop": "cap_drop that keeps capabilities (lockstep drops ALL)",
    "runtime": "another OCI runtime than the project's isolation asks for",
}
OWNED = {"Image": "the project's image by digest", "Cmd": "the spawner's cmd/args",
         "HostConfig": "extra_host_config", "NetworkingConfig": "the project network",
         "ExposedPorts": "the spawner's port"}
UNCONFINED = ("seccomp=unconfined", "seccomp:unconfined", "apparmor=unconfined",
              "apparmor:unconfined", "label=disable", "label:disable",
              "no-new-privileges=false", "no-new-privileges:false", "systempaths=unconfined")
SHARED_NAMESPACES = {"PidMode": "host_pid", "IpcMode": "host_ipc", "UTSMode": "host_uts",
                     "UsernsMode": "host_userns", "CgroupnsMode": "host_cgroupns"}
PRIVATE_IPC = ("", "private", "none")


class WeakeningRefused(LockstepError):
    """The site's DockerSpawner traits would weaken hardening and no override allows it."""


@dataclass(frozen=True)
class Weakening:
    name: str
    """The override that allows it (a key of ``WEAKENINGS``)."""
    trait: str
    """The trait that asks for it, e.g. ``extra_host_config``."""
    detail: str
    """What exactly, e.g. ``Privileged=True``."""


@dataclass(frozen=True)
class Inherited:
    """The parent's traits in the Engine API's spelling, ready for ``render``."""

    host: dict[str, Any] = field(default_factory=dict)
    create: dict[str, Any] = field(default_factory=dict)
    mounts: tuple[dict, ...] = ()
    memory: int | None = None
    nano_cpus: int | None = None
    memory_reservation: int | None = None
    nano_cpu_guarantee: int | None = None
    """``Spawner.cpu_guarantee`` in nano-CPUs (``render`` makes it ``CpuShares``)."""
    network: str = ""
    """DockerSpawner's ``network_name`` when the site set one (not 'bridge')."""


def volume_mounts(volumes: Mapping, read_only: bool) -> list[dict]:
    """DockerSpawner ``volumes``/``read_only_volumes`` -> API ``Mounts`` (a source that is
    an absolute path is a host bind, anything else a named volume)."""
    out = []
    for source, spec in sorted(volumes.items()):
        target, mode = (spec, "rw") if isinstance(spec, str) else \
            (spec["bind"], spec.get("mode", "rw"))
        out.append({"Type": "bind" if str(source).startswith("/") else "volume",
                    "Source": str(source), "Target": target,
                    "ReadOnly": read_only or mode == "ro"})
    return out


def api_mount(mount: Mapping) -> dict:
    """One DockerSpawner ``mounts`` entry (``docker.types.Mount`` keywords) -> API form."""
    if "Target" in mount:
        return dict(mount)
    kind = mount.get("type", "volume")
    out: dict = {"Type": kind, "Target": mount["target"],
                 "ReadOnly": bool(mount.get("read_only", False))}
    if kind != "tmpfs":
        out["Source"] = mount.get("source") or ""
    if kind == "bind" and mount.get("propagation"):
        out["BindOptions"] = {"Propagation": mount["propagation"]}
    if kind == "volume" and (mount.get("no_copy") or mount.get("labels")):
        out["VolumeOptions"] = {"NoCopy": bool(mount.get("no_copy")),
                                "Labels": dict(mount.get("labels") or {})}
    if kind == "tmpfs":
        options = {"SizeBytes": mount.get("tmpfs_size"), "Mode": mount.get("tmpfs_mode")}
        out["TmpfsOptions"] = {k: v for k, v in options.items() if v is not None}
    return out


def _split(given: Mapping) -> tuple[dict, dict]:
    """(docker-py spellings, API spellings): API keys start with a capital letter."""
    api = {k: v for k, v in given.items() if k[:1].isupper()}
    return {k: v for k, v in given.items() if k not in api}, api


def from_traits(*, extra_host_config: Mapping = {}, extra_create_kwargs: Mapping = {},  # noqa: B006
                volumes: Mapping = {}, read_only_volumes: Mapping = {},  # noqa: B006
                mounts: Sequence[Mapping] = (), links: Mapping = {},  # noqa: B006
                mem_limit: int | None = None, cpu_limit: float | None = None,
                mem_guarantee: int | None = None, cpu_guarantee: float | None = None,
                network_name: str = "") -> Inherited:
    """The traits' values (callables already called, templates filled) -> ``Inherited``."""
    host_py, host_api = _split(extra_host_config)
    create_py, create_api = _split(extra_create_kwargs)
    host, create = api_form(host_config=host_py, create=create_py)
    host.update(host_api)
    create.update(create_api)
    if links:
        host["Links"] = sorted(f"{name}:{alias}" for name, alias in links.items())
    all_mounts = (volume_mounts(volumes, False) + volume_mounts(read_only_volumes, True)
                  + [api_mount(m) for m in mounts])
    return Inherited(
        host=dict(sorted(host.items())), create=dict(sorted(create.items())),
        mounts=tuple(all_mounts), memory=int(mem_limit) if mem_limit else None,
        nano_cpus=int(round(cpu_limit * 1e9)) if cpu_limit else None,
        memory_reservation=int(mem_guarantee) if mem_guarantee else None,
        nano_cpu_guarantee=int(round(cpu_guarantee * 1e9)) if cpu_guarantee else None,
        network="" if network_name in ("", "bridge") else network_name)


def _is_root(user: object) -> bool:
    name = str(user).split(":", 1)[0].strip()
    return name in ("0", "root")


def _host_weakenings(host: Mapping) -> list[Weakening]:
    found = []

    def add(name: str, key: str) -> None:
        found.append(Weakening(name, "extra_host_config", f"{key}={host[key]!r}"))

    if host.get("Privileged"):
        add("privileged", "Privileged")
    if host.get("CapAdd"):
        add("cap_add", "CapAdd")
    if "CapDrop" in host and "ALL" not in [str(c).upper() for c in host["CapDrop"] or []]:
        add("cap_drop", "CapDrop")
    if "NetworkMode" in host:
        mode = str(host["NetworkMode"])
        add("host_network" if mode == "host" or mode.startswith("container:") else "network",
            "NetworkMode")
    for key, name in SHARED_NAMESPACES.items():
        value = str(host.get(key) or "")
        if value and not (key == "IpcMode" and value in PRIVATE_IPC):
            add(name, key)
    if any(str(o).replace(" ", "") in UNCONFINED for o in host.get("SecurityOpt") or []):
        add("security_opt", "SecurityOpt")
    for key in ("Devices", "DeviceRequests", "DeviceCgroupRules"):
        if host.get(key):
            add("devices", key)
    if host.get("Binds"):
        add("host_bind", "Binds")
    if host.get("ReadonlyRootfs") is False:
        add("writable_root", "ReadonlyRootfs")
    if host.get("Runtime"):
        add("runtime", "Runtime")
    return found


def weakenings(inherited: Inherited) -> list[Weakening]:
    """Every way ``inherited`` would weaken lockstep's hardening (empty: none)."""
    found = _host_weakenings(inherited.host)
    create = inherited.create
    if "User" in create and _is_root(create["User"]):
        found.append(Weakening("root", "extra_create_kwargs", f"User={create['User']!r}"))
    if create.get("Runtime"):
        found.append(Weakening("runtime", "extra_create_kwargs", f"Runtime={create['Runtime']!r}"))
    for mount in inherited.mounts:
        if mount.get("Type") == "bind":
            found.append(Weakening("host_bind", "volumes/read_only_volumes/mounts",
                                   f"{mount.get('Source')} -> {mount.get('Target')}"))
    if inherited.network:
        found.append(Weakening("network", "network_name", repr(inherited.network)))
    return found


def owned_keys(inherited: Inherited) -> list[str]:
    """``extra_create_kwargs`` keys lockstep sets itself (never taken from the trait)."""
    return sorted(k for k in inherited.create if k in OWNED)


def refusal(found: Sequence[Weakening], allowed: Sequence[str], owned: Sequence[str] = (),
            ) -> str:
    """'' when nothing is refused; else one message naming each trait and its fix."""
    lines = [f"- {w.trait}: {w.detail} would allow {WEAKENINGS[w.name]}. Remove it, or allow "
             f"it with c.LockstepDockerSpawner.allow_weakening = [{w.name!r}]."
             for w in found if w.name not in allowed]
    lines += [f"- extra_create_kwargs: {key} is set by lockstep ({OWNED[key]}); remove it."
              for key in owned]
    if not lines:
        return ""
    return ("lockstep refuses DockerSpawner settings that weaken its hardening:\n"
            + "\n".join(lines))
