"""GPU requests for the Docker Engine API, per device mode, and the host capability check.

Three ways a container can be handed GPUs, all rendered here as HostConfig fragments:

``nvidia``
    The NVIDIA Container Toolkit's runtime hook (Docker 19.03+):
    ``DeviceRequests: [{"Driver": "nvidia", "Count": n, "Capabilities": [["gpu"]]}]``.
``cdi``
    Container Device Interface names through ``DeviceRequests`` (Docker 25+ with CDI on):
    ``[{"Driver": "cdi", "DeviceIDs": ["nvidia.com/gpu=0", ...]}]``.
``cdi-devices``
    CDI names as ``HostConfig.Devices[].PathOnHost``. No engine is known to honour this
    shape; it is never chosen by ``auto``. Podman 4.3.1's Docker-compatible API joins the
    entry into ``--device nvidia.com/gpu=0::rwm``, which fails at start ("unresolvable
    CDI devices"); ``tests/docker/test_gpu_cdi_podman.py`` records that.

What Podman's Docker-compatible API does with each (Podman 4.3.1, observed through a test
CDI spec): ``nvidia`` and ``cdi`` device requests are accepted and silently dropped (the
container starts without the device); ``cdi-devices`` fails at start. Podman's own CLI
(``podman run --device nvidia.com/gpu=0``) and libpod API do inject CDI devices, but
lockstep drives the Docker-compatible API. So on Podman 4 every GPU request is refused;
on later Podman, ``auto`` still refuses and an explicit ``gpu_mode = "cdi"`` is trusted
(containers/podman#25171 maps ``Driver: "cdi"`` requests to CDI devices; not verified
by lockstep).

``detect_gpu_mode`` picks a mode from ``docker info`` (and, optionally, ``/version``);
``check_gpu`` refuses, before anything is created, a GPU request the engine cannot honour,
naming what to install; ``check_cuda`` refuses one whose CUDA requirement (``gpu.cuda``)
the host's driver does not meet. Everything here is pure: the caller fetches ``docker
info`` and the host's CUDA version.
"""

from __future__ import annotations

from collections.abc import Mapping

from spawner.cuda import CudaVersion, check_driver, parse_requirement
from spawner.errors import LockstepError
from spawner.launch.spec import GpuRequest

GPU_MODES = ("auto", "none", "nvidia", "cdi", "cdi-devices")
CDI_KINDS = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}

INSTALL_HINT = (
    "To give containers NVIDIA GPUs, install the NVIDIA Container Toolkit on the Docker host "
    "and register its runtime (`nvidia-ctk runtime configure --runtime=docker`, then restart "
    "dockerd), or, on Docker 25+, generate a CDI spec "
    "(`nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`) and enable CDI in daemon.json. "
    "Then set c.LockstepDockerSpawner.gpu_mode, or leave it at 'auto'."
)

PODMAN_HINT = (
    "Podman's own CLI injects CDI devices (`podman run --device nvidia.com/gpu=0`), but "
    "lockstep drives its Docker-compatible API, and Podman 4 accepts GPU device requests "
    "there and drops them. Podman releases with containers/podman#25171 map device requests "
    "with driver 'cdi' to CDI devices (not verified by lockstep): on such a Podman, generate "
    "a CDI spec (`nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`) and set "
    "c.LockstepDockerSpawner.gpu_mode = 'cdi'. Or run the hub against Docker with the "
    "NVIDIA Container Toolkit, or start the project without a GPU."
)


class GpuUnavailable(LockstepError):
    """The project asks for GPUs this engine cannot provide."""


def is_podman(info: Mapping | None, version: Mapping | None = None) -> bool:
    """True when ``docker info`` (or ``/version``) comes from Podman's compatible API.

    Podman's ``/info`` carries ``BuildahVersion``, which Docker's never has; its
    ``/version`` names a "Podman Engine" component.
    """
    if "BuildahVersion" in (info or {}):
        return True
    for component in (version or {}).get("Components") or ():
        if "podman" in str(component.get("Name", "")).lower():
            return True
    return False


def _major(server_version: object) -> int:
    head = str(server_version or "").split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def detect_gpu_mode(info: Mapping, version: Mapping | None = None) -> str:
    """The GPU mode this engine supports, from ``docker info`` (``"none"`` if it has none).

    The NVIDIA runtime wins over CDI when both exist: it needs no per-device names.
    Podman is always ``"none"``: its Docker-compatible API drops ``nvidia`` requests even
    with an ``nvidia`` runtime configured, and lockstep has verified no mode on it.
    """
    if is_podman(info, version):
        return "none"
    runtimes = set((info.get("Runtimes") or {}).keys())
    if "nvidia" in runtimes:
        return "nvidia"
    if info.get("CDISpecDirs"):
        return "cdi"
    return "none"


def cdi_names(request: GpuRequest) -> list[str]:
    """CDI device names for ``request``: ``nvidia.com/gpu=0`` .. ``=n-1``."""
    kind = CDI_KINDS[request.vendor]
    return [f"{kind}={i}" for i in range(request.count)]


def render_gpu(request: GpuRequest | None, mode: str) -> dict:
    """The HostConfig keys that give ``request`` to a container in ``mode`` ({} for none)."""
    if request is None:
        return {}
    if mode == "nvidia":
        if request.vendor != "nvidia":
            raise GpuUnavailable(
                f"GPU vendor {request.vendor!r} cannot use the 'nvidia' device mode; "
                "use gpu_mode 'cdi' with the vendor's CDI spec"
            )
        return {
            "DeviceRequests": [
                {"Driver": "nvidia", "Count": request.count, "Capabilities": [["gpu"]]}
            ]
        }
    if mode == "cdi":
        return {"DeviceRequests": [{"Driver": "cdi", "DeviceIDs": cdi_names(request)}]}
    if mode == "cdi-devices":
        return {
            "Devices": [
                {"PathOnHost": name, "PathInContainer": "", "CgroupPermissions": "rwm"}
                for name in cdi_names(request)
            ]
        }
    raise GpuUnavailable(f"cannot render a GPU request in mode {mode!r}")


def _asks(request: GpuRequest, project: str) -> str:
    return f"Project {project!r} asks for {request.count} {request.vendor} GPU(s), but "


def _check_podman(request: GpuRequest, mode: str, *, project: str, info: Mapping) -> None:
    """Raise unless ``mode`` was set explicitly on a Podman newer than 4."""
    version = str(info.get("ServerVersion") or "unknown")
    if _major(version) and _major(version) < 5:
        raise GpuUnavailable(
            _asks(request, project) + f"this engine is Podman {version}, whose "
            "Docker-compatible API cannot give containers GPUs (device requests are dropped; "
            "CDI names as devices fail at start). " + PODMAN_HINT
        )
    if mode in ("auto", "none"):
        raise GpuUnavailable(
            _asks(request, project) + f"this engine is Podman {version} and gpu_mode is "
            f"{mode!r} (lockstep picks no GPU mode for Podman by itself). " + PODMAN_HINT
        )


def check_gpu(request: GpuRequest | None, mode: str, *, project: str, info: Mapping) -> str:
    """Return the mode to use for ``request``, or raise ``GpuUnavailable`` saying what to install.

    ``mode`` is the configured mode; ``"auto"`` is resolved from ``info``. An explicit mode
    is trusted on Docker (``--gpus`` works with the toolkit's hook even without an
    ``nvidia`` runtime) and on Podman 5+; on Podman 4 every GPU request is refused.
    """
    resolved = detect_gpu_mode(info) if mode == "auto" else mode
    if request is None:
        return resolved
    if resolved not in GPU_MODES:
        raise GpuUnavailable(f"unknown GPU mode {resolved!r}; choose one of {', '.join(GPU_MODES)}")
    if is_podman(info):
        _check_podman(request, mode, project=project, info=info)
    if resolved == "none":
        runtimes = ", ".join(sorted((info.get("Runtimes") or {}).keys())) or "none"
        raise GpuUnavailable(
            _asks(request, project) + f"this Docker host cannot give containers GPUs: its "
            f"runtimes are {runtimes} (no 'nvidia') and it reports no CDI spec directories. "
            + INSTALL_HINT + " Or start the project without a GPU."
        )
    return resolved


def check_cuda(
    request: GpuRequest | None, host: CudaVersion | None, *, project: str, source: str
) -> bool:
    """Raise ``CudaError`` when ``request`` needs a newer CUDA than ``host`` supports.

    True when checked and met; False when there is nothing to check (no GPU, no CUDA
    requirement, or the host's CUDA version is unknown).
    """
    if request is None or not request.cuda or host is None:
        return False
    check_driver(parse_requirement(request.cuda), host, project=project, source=source)
    return True
