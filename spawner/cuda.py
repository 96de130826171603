"""What a project's GPU code needs from the CUDA driver, and whether a host or node has it.

A project states a minimum: ``gpu: {cuda: ">=12.0"}`` in ``project.yaml`` (or ``__cuda`` in
conda-lock's ``virtual-packages.yml``). The NVIDIA driver is backward compatible (a driver
that supports CUDA 12.4 runs code built for 12.0), so a requirement is a lower bound only:
``>=MAJOR`` or ``>=MAJOR.MINOR``. The same requirement

* tells the solver the machine it solves for (``__cuda=12.0=0``, the lowest the project
  accepts, so a locked build runs on every host that meets the requirement);
* is recorded in the lock (``lockstep.cuda``) and the image label (``labels.CUDA``);
* is checked against the Docker host's driver (``check_driver``) before anything starts;
* becomes node affinity on the labels NVIDIA GPU feature discovery puts on GPU nodes
  (``node_selector_terms``).

Guarantees: everything here is pure except ``detect_host_cuda``, which runs ``nvidia-smi``
when it is on ``PATH`` (the only I/O, and it never raises). Errors are ``CudaError`` (also a
``ValueError``, so pydantic reports it on the ``gpu.cuda`` key) naming the value, the
allowed form and the fix. This module must not import anything from lockstep but
``errors``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from spawner.errors import LockstepError

REQUIREMENT_RE = re.compile(r"^>=\s*([0-9]{1,3})(?:\.([0-9]{1,3}))?$")
VERSION_RE = re.compile(r"^([0-9]{1,3})(?:\.([0-9]{1,3}))?(?:\.[0-9]+)*$")
SMI_RE = re.compile(r"CUDA Version\s*:\s*([0-9]+(?:\.[0-9]+)?)")
CUDA_PLATFORMS = ("linux-64", "linux-aarch64", "win-64")
"""Platforms that have NVIDIA CUDA drivers (macOS has none since CUDA 10.2)."""
GFD_MAJOR = "nvidia.com/cuda.runtime.major"
GFD_MINOR = "nvidia.com/cuda.runtime.minor"
"""GPU feature discovery's labels for the CUDA version the node's driver supports.

GFD's ``nvidia.com/cuda.driver.major``/``minor`` hold the *driver's* version (535, 104),
not a CUDA version, so a CUDA requirement is matched on ``cuda.runtime.*``, which GFD
fills from ``cuDriverGetVersion`` (the newest CUDA the driver supports)."""


class CudaError(LockstepError, ValueError):
    """A CUDA requirement that cannot be read, or that a host's driver does not meet."""


@dataclass(frozen=True, order=True)
class CudaVersion:
    major: int
    minor: int = 0

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True)
class CudaRequirement:
    """A minimum CUDA version the driver must support."""

    minimum: CudaVersion

    def __str__(self) -> str:
        return f">={self.minimum}"

    def satisfied_by(self, host: CudaVersion) -> bool:
        return host >= self.minimum

    def virtual_package(self) -> tuple[str, str, str]:
        """``(name, version, build)`` of the ``__cuda`` virtual package to solve with."""
        return ("__cuda", str(self.minimum), "0")


def parse_requirement(text: object, *, where: str = "gpu.cuda") -> CudaRequirement:
    """``">=12.0"`` (or ``">=12"``) as a requirement; anything else is a ``CudaError``."""
    match = REQUIREMENT_RE.match(str(text).strip()) if isinstance(text, str | int | float) else None
    if not match:
        raise CudaError(
            f"{where} {text!r} is not a CUDA requirement lockstep reads; write a minimum, "
            "'>=MAJOR.MINOR', e.g. cuda: \">=12.0\" (quoted). NVIDIA drivers run code built "
            "for any older CUDA, so an upper bound or an exact version is not a requirement "
            "on the host."
        )
    return CudaRequirement(CudaVersion(int(match[1]), int(match[2] or 0)))


def parse_version(text: object, *, where: str) -> CudaVersion:
    """A CUDA version such as ``12.4`` (what ``nvidia-smi`` prints as "CUDA Version")."""
    match = VERSION_RE.match(str(text).strip())
    if not match:
        raise CudaError(
            f"{where} {text!r} is not a CUDA version; write MAJOR.MINOR as nvidia-smi prints "
            "it after 'CUDA Version:', e.g. '12.4'."
        )
    return CudaVersion(int(match[1]), int(match[2] or 0))


def check_driver(
    requirement: CudaRequirement, host: CudaVersion, *, project: str, source: str
) -> None:
    """Raise ``CudaError`` unless a driver supporting CUDA ``host`` meets ``requirement``."""
    if requirement.satisfied_by(host):
        return
    raise CudaError(
        f"Project {project!r} needs CUDA {requirement} (gpu.cuda in its project.yaml), but "
        f"this host's NVIDIA driver supports CUDA {host} ({source}). Install a driver that "
        f"supports CUDA {requirement.minimum} or newer on the GPU host (nvidia-smi shows "
        "'CUDA Version' in its header), or start the project without a GPU; no container "
        "was created."
    )


def node_selector_terms(requirement: CudaRequirement) -> list[dict]:
    """Node affinity terms (ORed) matching nodes whose driver supports ``requirement``.

    ``>=12.0`` is one term, runtime major > 11; ``>=12.2`` is two: major > 12, or major
    12 and minor > 1 (``Gt`` compares integers; ``In`` matches the exact major).
    """
    major, minor = requirement.minimum.major, requirement.minimum.minor
    if minor == 0:
        return [{"matchExpressions": [_expr(GFD_MAJOR, "Gt", major - 1)]}]
    return [
        {"matchExpressions": [_expr(GFD_MAJOR, "Gt", major)]},
        {
            "matchExpressions": [
                _expr(GFD_MAJOR, "In", major),
                _expr(GFD_MINOR, "Gt", minor - 1),
            ]
        },
    ]


def _expr(key: str, operator: str, value: int) -> dict:
    return {"key": key, "operator": operator, "values": [str(value)]}


def version_from_smi(output: str) -> CudaVersion | None:
    """The "CUDA Version" in ``nvidia-smi``'s header, or None when it has none."""
    match = SMI_RE.search(output or "")
    return parse_version(match[1], where="nvidia-smi's CUDA Version") if match else None


def detect_host_cuda(
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> CudaVersion | None:
    """The CUDA version this host's driver supports, from ``nvidia-smi``; None when unknown.

    The one function here that does I/O. Never raises: no ``nvidia-smi``, a failing one or
    one whose output has no "CUDA Version" all give None.
    """
    if run is subprocess.run and shutil.which("nvidia-smi") is None:
        return None
    try:
        done = run(["nvidia-smi"], capture_output=True, text=True, timeout=10)
        return version_from_smi(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, CudaError):
        return None
