"""The CUDA a lock is solved for: read from the project, told to the solver, recorded.

A project states what its GPU code needs in ``project.yaml`` (``gpu: {cuda: ">=12.0"}``)
or, as conda-lock users do, in ``virtual-packages.yml`` beside the spec
(``subdirs: {linux-64: {packages: {__cuda: "12.0"}}}``). ``plan_cuda`` turns either into
the ``__cuda`` virtual package each CUDA platform is solved with (the project's minimum, so
a locked build runs on every host meeting the requirement) and the requirement the lock
records as ``lockstep.cuda`` (and the image carries as ``labels.CUDA``).

Guarantees: ``plan_cuda`` only reads those two files and raises ``SpecError`` naming the
file, the key and the fix; the rest is pure. A folder that states no CUDA gets an empty
plan and the solve is exactly what it was before. This module must not import rattler
or conda-lock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from spawner import cuda as cudareq
from spawner.lock.spec import SpecError

META_CUDA = "lockstep.cuda"
PROJECT_FILE = "project.yaml"
VIRTUAL_FILES = ("virtual-packages.yml", "virtual-packages.yaml")


@dataclass(frozen=True)
class CudaPlan:
    """What a solve assumes about CUDA (empty when the project states nothing)."""

    requirement: str = ""
    """``">=12.0"``: what the lock records and images carry; '' for none."""
    source: str = ""
    """Where the requirement was stated (file and key), for messages."""
    versions: Mapping[str, str] = field(default_factory=dict)
    """``__cuda`` version to solve with, per platform (CUDA platforms only)."""


def _load(path: Path) -> object:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(
            f"{path}: not valid YAML: {exc}. Fix the syntax at the line shown."
        ) from None
    except OSError:
        return None


def project_requirement(folder: Path) -> tuple[cudareq.CudaRequirement | None, str]:
    """``gpu.cuda`` of ``folder/project.yaml`` (None when the file or key is absent)."""
    path = Path(folder) / PROJECT_FILE
    raw = _load(path) if path.is_file() else None
    gpu = raw.get("gpu") if isinstance(raw, dict) else None
    value = gpu.get("cuda") if isinstance(gpu, dict) else None
    if value in (None, ""):
        return None, ""
    try:
        return cudareq.parse_requirement(value, where=f"{path}: gpu.cuda"), f"{path}: gpu.cuda"
    except cudareq.CudaError as exc:
        raise SpecError(str(exc)) from None


def file_versions(folder: Path) -> tuple[dict[str, cudareq.CudaVersion], str]:
    """``__cuda`` per platform from conda-lock's ``virtual-packages.yml`` in ``folder``."""
    for name in VIRTUAL_FILES:
        path = Path(folder) / name
        if path.is_file():
            break
    else:
        return {}, ""
    raw = _load(path)
    subdirs = raw.get("subdirs") if isinstance(raw, dict) else None
    found: dict[str, cudareq.CudaVersion] = {}
    for platform, entry in (subdirs or {}).items():
        packages = entry.get("packages") if isinstance(entry, dict) else None
        value = packages.get("__cuda") if isinstance(packages, dict) else None
        if value not in (None, ""):
            where = f"{path}: subdirs.{platform}.packages.__cuda"
            try:
                found[str(platform)] = cudareq.parse_version(value, where=where)
            except cudareq.CudaError as exc:
                raise SpecError(str(exc)) from None
    return found, str(path)


def plan_cuda(folder: Path, platforms: Sequence[str]) -> CudaPlan:
    """The CUDA plan for a spec in ``folder`` locked for ``platforms`` (reads two files)."""
    stated, stated_where = project_requirement(folder)
    listed, listed_where = file_versions(folder)
    if stated is None and not listed:
        return CudaPlan()
    versions: dict[str, str] = {}
    for platform in platforms:
        if platform not in cudareq.CUDA_PLATFORMS:
            continue
        version = listed.get(platform) or (stated.minimum if stated else None)
        if stated and version and not stated.satisfied_by(version):
            raise SpecError(
                f"{listed_where}: __cuda {version} for {platform} is older than {stated_where} "
                f"asks ({stated}); make them agree: set __cuda to {stated.minimum} or lower "
                "gpu.cuda."
            )
        if version:
            versions[platform] = str(version)
    if stated:
        return CudaPlan(str(stated), stated_where, versions)
    lowest = min(listed.values())
    return CudaPlan(str(cudareq.CudaRequirement(lowest)), listed_where, versions)


def with_cuda(
    triples: Sequence[tuple[str, str, str]], version: str | None
) -> tuple[tuple[str, str, str], ...]:
    """The site's virtual packages with ``__cuda`` set to ``version`` (unchanged if None)."""
    if not version:
        return tuple(triples)
    kept = [t for t in triples if t[0] != "__cuda"]
    return (*kept, ("__cuda", version, "0"))


def unsolvable_hint(message: str, plan: CudaPlan, platform: str = "") -> str:
    """A sentence to add to a failed solve's error when CUDA is part of why, else ''."""
    if "__cuda" not in message:
        return ""
    if platform and platform not in cudareq.CUDA_PLATFORMS:
        return (
            f"\nA package above needs a CUDA driver (__cuda), which {platform} never has: "
            "list it for Linux only with a selector comment, e.g.\n  - cudatoy  # [linux]"
        )
    if not plan.requirement:
        return (
            "\nA package above needs a CUDA driver (__cuda), and this project states none: "
            "add the CUDA its GPU code needs to project.yaml, e.g.\n"
            '  gpu:\n    cuda: ">=12.0"\nor list __cuda in virtual-packages.yml.'
        )
    return (
        f"\nA package above needs a newer CUDA than the project states ({plan.requirement}, "
        f"{plan.source}): raise that minimum to what the package needs (drivers on the GPU "
        "hosts must support it), or pin a build of the package made for an older CUDA."
    )


def lock_requirement(lockfile) -> str:
    """The CUDA requirement a parsed lock (conda-lock's ``Lockfile``) records; '' for none."""
    return str((lockfile.metadata.custom_metadata or {}).get(META_CUDA, ""))
