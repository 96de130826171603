"""GPU requests for the Docker Engine API, per device mode, and the host capability check.

Three ways an engine can hand a container GPUs, all rendered here as HostConfig fragments:

``nvidia``
    The NVIDIA Container Toolkit's runtime hook (Docker 19.03+):
    ``DeviceRequests: [{"Driver": "nvidia", "Count": n, "Capabilities": [["gpu"]]}]``.
``cdi``
    Container Device Interface names through ``DeviceRequests`` (Docker 25+ with CDI on):
    ``[{"Driver": "cdi", "DeviceIDs": ["nvidia.com/gpu=0", ...]}]``.
``cdi-devices``
    CDI names in ``HostConfig.Devices`` (Podman's Docker-compatible API passes
    ``PathOnHost`` to ``--device``, which accepts CDI names).

``detect_gpu_mode`` picks a mode from ``docker info`` (and the engine's version
components); ``check_gpu`` refuses, before anything is created, a GPU request the host
cannot honour, naming what to install. Everything here is pure: the caller fetches
``docker info``.
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import LockstepError
from .launch import GpuRequest

GPU_MODES = ("auto", "none", "nvidia", "cdi", "cdi-devices")
CDI_KINDS = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}

INSTALL_HINT = (
    "To give containers NVIDIA GPUs, install the NVIDIA Container Toolkit on the Docker host "
    "and register its runtime (`nvidia-ctk runtime configure --runtime=docker`, then restart "
    "dockerd), or, on Docker 25+ / Podman 4.1+, generate a CDI spec "
    "(`nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`) and enable CDI. "
    "Then set c.LockstepDockerSpawner.gpu_mode, or leave it at 'auto'."
)


class GpuUnavailable(LockstepError):
    """The project asks for GPUs this engine cannot provide."""


def is_podman(version: Mapping | None) -> bool:
    """True when the engine's ``/version`` answer comes from Podman's compatible API."""
    for component in (version or {}).get("Components") or ():
        if "podman" in str(component.get("Name", "")).lower():
            return True
    return False


def detect_gpu_mode(info: Mapping, version: Mapping | None = None) -> str:
    """The GPU mode this engine supports, from ``docker info`` (``"none"`` if it has none).

    The NVIDIA runtime wins over CDI when both exist: it needs no per-device names.
    """
    runtimes = set((info.get("Runtimes") or {}).keys())
    if "nvidia" in runtimes:
        return "nvidia"
    if info.get("CDISpecDirs"):
        return "cdi"
    if is_podman(version):
        return "cdi-devices"
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


def check_gpu(request: GpuRequest | None, mode: str, *, project: str, info: Mapping) -> str:
    """Return the mode to use for ``request``, or raise ``GpuUnavailable`` saying what to install.

    ``mode`` is the configured mode; ``"auto"`` is resolved from ``info``. An explicit mode
    is trusted (``--gpus`` works with the toolkit's hook even without an ``nvidia`` runtime).
    """
    resolved = detect_gpu_mode(info) if mode == "auto" else mode
    if request is None:
        return resolved
    if resolved == "none":
        runtimes = ", ".join(sorted((info.get("Runtimes") or {}).keys())) or "none"
        raise GpuUnavailable(
            f"Project {project!r} asks for {request.count} {request.vendor} GPU(s), but this "
            f"Docker host cannot give containers GPUs: its runtimes are {runtimes} (no "
            "'nvidia') and it reports no CDI spec directories. " + INSTALL_HINT +
            " Or start the project without a GPU."
        )
    if resolved not in GPU_MODES:
        raise GpuUnavailable(f"unknown GPU mode {resolved!r}; choose one of {', '.join(GPU_MODES)}")
    return resolved
