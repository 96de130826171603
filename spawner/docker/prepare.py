"""Make the engine ready for one launch spec: the one way, for servers, jobs, services, gates.

``prepare(api, spec, project=..., site=...)`` does, in this order, and stops at the first
step that fails (nothing is created before the checks pass):

1. **host checks** (``check_host``, pure over ``docker info``): the project's ``isolation``
   maps to a runtime the engine has registered (``site.runtime_names``), a GPU request
   can be honoured in ``site.gpu_mode``, and the host's driver meets the project's CUDA
   requirement (``site.host_cuda_version``, else ``nvidia-smi`` when present); and the
   data sources: where the engine cannot force binds read-only recursively (API < 1.44)
   a source with a file system mounted below it is refused (``spawner.docker.submounts``;
   ``Prepared.recursive_read_only`` tells the renderer to force it where it can);
2. **image**: pulled by digest when the engine lacks it, with progress (unless the caller
   pulls by its own policy);
3. **network** (unless the spec's network is ``none``): the project's bridge (no
   container-to-container traffic, no IPv6), ``--internal`` as the site says, and, when
   ``site.firewall`` is on, lockstep's iptables/ip6tables chains rewritten for every
   lockstep bridge with the site's ``allowed_egress`` (one writer at a time on the host,
   across processes), the same for servers, jobs, services and gates;
4. **volumes**: home and workspace volumes exist (one listing call), those created now
   handed to the notebook user together by one one-shot container when the site's
   ``volume_ownership`` is ``chown``; a workspace created now is seeded by that container
   with the project's notebooks (``<notebooks_dir>/<project>``, when the caller names a
   ``notebooks_dir`` and the site's ``seed_workspace`` is on; ``spawner.docker.seed``).

It returns a ``Prepared`` (the runtime and GPU mode to render with, the inspected network).
A failure is a ``PrepareError`` naming its ``step`` (``host`` and ``data`` are the
requester's problem, a 400; the rest are the host's, a 500). This module decides nothing
about the container itself (``render`` does) and talks to the engine only through
``spawner.docker.engine``.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from spawner.cuda import CudaVersion, detect_host_cuda, parse_version
from spawner.docker import engine, firewall
from spawner.docker.gpu import check_cuda, check_gpu
from spawner.docker.oneshot import one_shot
from spawner.docker.render import volume_labels
from spawner.docker.runtimes import engine_runtime
from spawner.docker.seed import seed_code, seed_mount, seed_source
from spawner.docker.site import DockerSite
from spawner.docker.submounts import api_has_recursive_read_only, check_sources
from spawner.errors import LockstepError
from spawner.labels import ROLE
from spawner.launch.spec import GID, UID, GpuRequest, LaunchSpec
from spawner.project import Project
from spawner.settings import ENV_PREFIX

Report = Callable[[str, float], None]  # (message, fraction of the preparation done)
STATUS = {"host": 400, "data": 400}  # every other step: 500
NO_NETWORK = ("none", "")
VOLUME_INIT_TIMEOUT = 120
PULL_SHARE = 0.85  # of the preparation's progress, the pull's


class PrepareError(LockstepError):
    """The engine could not be prepared; ``step`` says where (host, pull, network, volume)."""

    def __init__(self, message: str, *, step: str):
        super().__init__(message)
        self.step = step
        self.status = STATUS.get(step, 500)


@dataclass(frozen=True)
class Prepared:
    """What the renderer needs from the preparation."""

    runtime: str  # HostConfig.Runtime ('' = the engine's default)
    gpu_mode: str
    network: Mapping  # ``docker network inspect`` ({} for network "none")
    pulled: bool = False
    created_volumes: tuple[str, ...] = ()
    recursive_read_only: bool = False  # the engine forces data binds read-only below too


def check_host(gpu: GpuRequest | None, *, project: Project, site: DockerSite,
               info: Mapping) -> tuple[str, str]:
    """(runtime, gpu mode) for ``project`` asking for ``gpu`` on the engine ``info``
    describes; raises ``RuntimeUnavailable``/``GpuUnavailable`` naming the fix. Pure."""
    runtime = engine_runtime(project.isolation, project=project.name, info=info,
                             names=site.runtimes)
    gpu_mode = check_gpu(gpu, site.gpu_mode, project=project.name, info=info)
    if gpu is not None and gpu.cuda:
        host, source = host_cuda(site)
        check_cuda(gpu, host, project=project.name, source=source)
    return runtime, gpu_mode


def host_cuda(site: DockerSite) -> tuple[CudaVersion | None, str]:
    """(CUDA version of the host's driver, where it was read): the site's
    ``host_cuda_version``, else ``nvidia-smi`` when on PATH (the one I/O of the host
    checks, run only for a GPU request that states a CUDA requirement), else unknown."""
    if site.host_cuda_version:
        where = "c.LockstepDockerSpawner.host_cuda_version"
        return parse_version(site.host_cuda_version, where=where), f"{where} = " \
            f"{site.host_cuda_version!r}"
    return detect_host_cuda(), "nvidia-smi on the hub's host"


def volume_init_body(image: str, volume: str, target: str, labels: Mapping, *,
                     runtime: str = "") -> dict:
    """A one-shot container that hands a new volume's root to uid 1000 (pure): the
    one-volume case of :func:`volumes_init_body`."""
    return volumes_init_body(image, {volume: target}, labels, runtime=runtime)


def volumes_init_body(image: str, volumes: Mapping[str, str], labels: Mapping, *,
                      runtime: str = "", seed: tuple[str, str] | None = None) -> dict:
    """A one-shot container that hands the roots of new volumes (name -> mount target) to
    uid 1000 (pure); one container for all of a spawn's new volumes. ``seed`` is (host
    folder, target): the folder, bound read-only, is first copied into that volume's
    target (``spawner.docker.seed``: regular files and folders only, nothing overwritten).

    Root inside it, but only CHOWN/FOWNER, no network, read-only root, fixed command, and
    small memory/CPU/pids limits (it lives about a second, and ``lockstep audit`` may see it).
    It runs the project's image, so it runs under the project's ``runtime`` (``runsc`` for a
    gVisor project: the image's code never runs as root on the host kernel under runc).
    """
    targets = sorted(volumes.values())
    code = (f"import os\nfor t in {targets!r}: os.chown(t, {UID}, {GID}); "
            "os.chmod(t, 0o2775)")
    mounts = [{"Type": "volume", "Source": name, "Target": target, "ReadOnly": False,
               "VolumeOptions": {"NoCopy": False}} for name, target in sorted(volumes.items())]
    if seed is not None:
        code = f"{seed_code(seed[1])}\n{code}"
        mounts.append(seed_mount(seed[0]))
    return {
        "Image": image,
        "User": "0:0",
        "Entrypoint": [f"{ENV_PREFIX}/bin/python", "-c", code],
        "Labels": {**labels, ROLE: "volume-init"},
        "HostConfig": {
            "CapDrop": ["ALL"],
            "CapAdd": ["CHOWN", "FOWNER"],
            "SecurityOpt": ["no-new-privileges:true"],
            "ReadonlyRootfs": True,
            "NetworkMode": "none",
            "Memory": 256 * 2**20,
            "NanoCpus": 500_000_000,
            # a sandbox runtime's own threads count against the container's pids cgroup:
            # runsc does not start under 64 (measured), so it gets 128
            "PidsLimit": 128 if runtime else 32,
            # runsc mounts its own /tmp and cannot make one in a read-only root
            "Mounts": [*mounts, {"Type": "tmpfs", "Target": "/tmp",
                                 "TmpfsOptions": {"SizeBytes": 2**20, "Mode": 0o1777}}],
            **({"Runtime": runtime} if runtime else {}),
        },
    }


def init_volumes(api, volumes: Mapping[str, str], labels: Mapping, *, image: str,
                 runtime: str = "", seed: tuple[str, str] | None = None) -> None:
    """Hand the new ``volumes`` (name -> target) to uid 1000 with one one-shot container,
    seeding ``seed`` (host folder, target) first; its output is read only when it fails."""
    body = volumes_init_body(image, volumes, labels, runtime=runtime, seed=seed)
    with one_shot(api, body) as container:
        engine.start_container(api, container)
        code = engine.wait_container(api, container, timeout=VOLUME_INIT_TIMEOUT)
        if code != 0:
            output = engine.container_logs(api, container, tail="all")
            raise engine.EngineError(
                f"could not prepare volume {', '.join(sorted(volumes))} for uid {UID} "
                f"(exit {code}): {output.strip()[-500:]}")


def _lock_path() -> Path:
    run = Path("/run/lock")
    return (run if os.access(run, os.W_OK) else Path(tempfile.gettempdir())) / \
        "lockstep-firewall.lock"


@contextmanager
def firewall_lock() -> Iterator[None]:
    """One firewall writer at a time on this host (hub threads, CLI runs, other hubs): the
    bridge list and the rules written from it are one step, so no bridge is lost."""
    with open(_lock_path(), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_network(api, spec: LaunchSpec, *, project: Project, site: DockerSite,
                   host_ports: Sequence[int] = ()) -> dict:
    """The project's network as the site wants it, guarded by the firewall when it is on."""
    network = engine.ensure_network(api, project.name, spec.network,
                                    internal=site.network_internal)
    if site.firewall:
        ports = sorted({*host_ports, *site.allowed_host_ports})
        if _firewall_covers(firewall.gateway_of(network), ports, site.allowed_egress):
            return network
        with firewall_lock():
            wanted = dict(gateways=engine.lockstep_gateways(api), host_ports=ports,
                          egress=site.allowed_egress)
            if not _firewall_current(repr(wanted)):
                firewall.sync_firewall(**wanted)
                _FIREWALL_WRITTEN.update(rules=repr(wanted), at=time.monotonic(),
                                         gateways=frozenset(wanted["gateways"]),
                                         admits=repr((ports, site.allowed_egress)))
    return network


FIREWALL_RESYNC = 60.0  # seconds: rules this process wrote are rewritten at least this often
_FIREWALL_WRITTEN: dict = {"rules": "", "at": 0.0, "gateways": frozenset(), "admits": ""}


def _firewall_current(rules: str) -> bool:
    """True when this process wrote exactly ``rules`` less than ``FIREWALL_RESYNC`` ago: a
    crowd of spawns on one project (same bridges, same ports) runs iptables once. Another
    hub's write keeps our bridges and ports (it reads them), so skipping is safe."""
    return (_FIREWALL_WRITTEN["rules"] == rules
            and time.monotonic() - _FIREWALL_WRITTEN["at"] < FIREWALL_RESYNC)


def _firewall_covers(gateway: str | None, ports: Sequence[int], egress) -> bool:
    """True when this process wrote, less than ``FIREWALL_RESYNC`` ago, rules that guard the
    bridge of ``gateway`` and admit exactly ``ports`` and ``egress``: the spawn needs no
    listing of every lockstep bridge then. A bridge made since by another process was
    written by that process (with every bridge, ours included); one removed since keeps
    its rules until the next rewrite, which admit nothing no lockstep bridge has."""
    return (bool(gateway) and gateway in _FIREWALL_WRITTEN["gateways"]
            and _FIREWALL_WRITTEN["admits"] == repr((list(ports), egress))
            and time.monotonic() - _FIREWALL_WRITTEN["at"] < FIREWALL_RESYNC)


def ensure_volumes(api, spec: LaunchSpec, *, chown: bool, report: Report,
                   runtime: str = "", notebooks: str = "") -> tuple[str, ...]:
    """Home and workspace volumes of ``spec``; the names of those created now, handed to
    uid 1000 together by one helper container under ``runtime`` (the project's), which
    seeds a workspace created now from the host folder ``notebooks`` ('' = none)."""
    wanted = [m for m in spec.mounts if m.kind in ("home", "workspace")]
    there = engine.existing_volumes(api, [m.source for m in wanted])
    created: dict[str, str] = {}
    labels: list[Mapping] = []
    for mount in wanted:
        if mount.source in there:
            continue
        labels.append(volume_labels(spec, mount))
        engine.create_volume(api, mount.source, dict(labels[-1]))
        created[mount.source] = mount.target
    if created and chown:
        common = {k: v for k, v in labels[0].items() if all(m.get(k) == v for m in labels)}
        seed = next(((notebooks, m.target) for m in wanted if notebooks
                     and m.kind == "workspace" and m.source in created), None)
        init_volumes(api, created, common, image=spec.image.reference, runtime=runtime,
                     seed=seed)
        if seed is not None:
            report(f"Seeded the new workspace with the notebooks of {spec.project}", 1.0)
    for name in created:
        report(f"Created volume {name}", 1.0)
    return tuple(created)


@contextmanager
def _step(step: str) -> Iterator[None]:
    try:
        yield
    except PrepareError:
        raise
    except LockstepError as exc:
        raise PrepareError(str(exc), step=step) from exc


def prepare(
    api,
    spec: LaunchSpec,
    *,
    project: Project,
    site: DockerSite,
    info: Mapping | None = None,
    host_ports: Sequence[int] = (),
    chown: bool | None = None,
    pull: bool = True,
    notebooks_dir: str = "",
    report: Report = lambda message, fraction: None,
) -> Prepared:
    """Make the engine ready for ``spec`` (see the module docstring).

    ``info`` is ``docker info`` when the caller has it (the hub caches it); ``host_ports``
    are host ports the firewall admits besides ``site.allowed_host_ports`` (the hub's own
    port); ``chown`` overrides ``site.chown_volumes`` for callers that render volumes
    ``NoCopy`` whatever the site says; ``pull=False`` leaves the image to the caller (the
    spawner honours DockerSpawner's ``pull_policy`` with the same ``engine.pull``).
    ``notebooks_dir`` is the site's ``c.Lockstep.notebooks_dir``: a workspace volume created
    now is seeded from its ``<project>`` folder when ``site.seed_workspace`` is on.
    ``report(message, fraction)`` sees progress.
    """
    with _step("host"):
        if info is None:
            info = engine.info(api)
        runtime, gpu_mode = check_host(spec.gpu, project=project, site=site, info=info)
    with _step("data"):
        recursive = api_has_recursive_read_only(engine.api_version(api))
        check_sources({m.name: m.source for m in spec.mounts if m.kind == "data"},
                      recursive=recursive)
    pulled = False
    if pull:
        with _step("pull"):
            pulled = engine.ensure_image(api, spec.image.reference,
                                         lambda message, f: report(message, PULL_SHARE * f))
            if pulled:
                report("Image pulled", PULL_SHARE)
    network: Mapping = {}
    if spec.network not in NO_NETWORK:
        with _step("network"):
            network = ensure_network(api, spec, project=project, site=site,
                                     host_ports=host_ports)
    with _step("volume"):
        seed = seed_source(notebooks_dir, project.name) if site.seed_workspace else ""
        created = ensure_volumes(api, spec, report=report, runtime=runtime, notebooks=seed,
                                 chown=site.chown_volumes if chown is None else chown)
    return Prepared(runtime, gpu_mode, network, pulled, created, recursive)
