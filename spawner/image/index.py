"""Images for a lock's Linux platforms, and the one OCI image index that holds them.

A lock may hold laptops' platforms (osx-*, win-64) beside the Linux ones images run on;
``image_platforms`` picks the Linux ones in a fixed order, and ``image_index`` writes the
OCI index that names one manifest per platform, so a lock with linux-64 and linux-aarch64
is one digest that ``docker pull`` resolves to the pulling machine's architecture.

Bytecode for a platform this machine cannot run (``compile_plan``): ``.pyc`` files are
the same bytes on every architecture for one CPython ``major.minor`` (the magic number and
the hash-based header depend on the interpreter version and the source only), so a foreign
platform's sources are compiled by the host's build sandbox python when its version equals
the environment's, and left uncompiled (CPython compiles them on first import, into the
user's cache when ``/opt/env`` is read-only) when it does not. Never is the environment's
own foreign interpreter run (no emulation).

Guarantees: pure (no I/O); the index bytes are canonical JSON, so the same manifests give
the same index digest. This module must not talk to a registry (``build`` pushes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from spawner.errors import LockstepError
from spawner.image import oci

OCI_PLATFORMS: Mapping[str, Mapping[str, str]] = {
    "linux-64": {"architecture": "amd64", "os": "linux"},
    "linux-aarch64": {"architecture": "arm64", "os": "linux", "variant": "v8"},
}
"""conda subdir -> OCI platform, for the platforms lockstep builds images for."""


@dataclass(frozen=True)
class PlatformManifest:
    """One platform's image manifest, as pushed."""

    platform: str  # conda subdir, e.g. linux-aarch64
    digest: str
    size: int


def image_platforms(lock_platforms: Sequence[str]) -> tuple[str, ...]:
    """The lock's platforms that get an image, in ``OCI_PLATFORMS`` order; refuses a lock
    with none (a laptop-only lock cannot become an image)."""
    chosen = tuple(p for p in OCI_PLATFORMS if p in lock_platforms)
    if not chosen:
        raise LockstepError(
            f"the lock holds no platform lockstep builds images for ({', '.join(lock_platforms)}"
            f"); add {' or '.join(OCI_PLATFORMS)} to platforms: in environment.yml and run "
            "`lockstep lock` again."
        )
    return chosen


def host_platforms(lock_platforms: Sequence[str], source: str) -> tuple[str, ...]:
    """``image_platforms``, refusing a lock without linux-64 (the platform of the build
    host, whose base and sandbox every build needs)."""
    linux = image_platforms(lock_platforms)
    if "linux-64" not in linux:
        raise LockstepError(
            f"{source} holds {', '.join(linux)} but no linux-64: lockstep builds linux-64 "
            "images on this host; add linux-64 to platforms: and lock again."
        )
    return linux


def image_index(manifests: Sequence[PlatformManifest]) -> bytes:
    """The OCI image index naming each platform's manifest (canonical JSON bytes)."""
    seen = [m.platform for m in manifests]
    if len(set(seen)) != len(seen) or not seen:
        raise ValueError(f"one manifest per platform is needed, got {seen}")
    ordered = sorted(manifests, key=lambda m: list(OCI_PLATFORMS).index(m.platform))
    return oci.canonical_json({
        "schemaVersion": 2,
        "mediaType": oci.MEDIA_INDEX,
        "manifests": [
            {**oci.Descriptor(oci.MEDIA_MANIFEST, m.digest, m.size).to_json(),
             "platform": dict(OCI_PLATFORMS[m.platform])}
            for m in ordered
        ],
    })


def compile_plan(platform: str, *, host_platform: str, env_python: str | None,
                 host_python: str) -> str:
    """How bytecode is made for ``platform``'s image: ``"env"`` (the environment's own
    python, in the sandbox: the host's platform), ``"host"`` (the host's python, same
    ``major.minor``), or ``"skip"`` (no python, or a version the host cannot compile for)."""
    if env_python is None:
        return "skip"
    if platform == host_platform:
        return "env"
    return "host" if env_python == host_python else "skip"
