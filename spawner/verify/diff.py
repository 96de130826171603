"""Does an image hold exactly the packages of its lock? The pure diff.

The lock's packages (``conda-lock.yml``, one platform) and the image's
(``/opt/env/conda-meta/*.json``) are both ``LockedPackage``s (``spawner.lock.package``),
compared on name, version, build, sha256 and file name (the last part of the URL: a mirror
may serve the same file from another host); every file a conda-meta record lists is
checked against the sha256 it records, so a package file changed after install is named as
well. Output is sorted by package name.

Reading the image (manifest, config, layers) is ``spawner.image.reader``; this module
only compares, apart from ``locked_packages``/``lock_hashes``, which read the lock file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from spawner.errors import LockstepError
from spawner.image.reader import PREFIX
from spawner.lock.package import LockedPackage, conda_packages, packages_of

DEFAULT_PLATFORM = "linux-64"
FIELDS = (("version", "version"), ("build", "build"), ("sha256", "sha256"), ("file", "filename"))
"""(word in the message, ``LockedPackage`` attribute) compared between lock and image."""

Kind = Literal["missing", "extra", "changed", "file"]


class VerifyError(LockstepError):
    """A lock that cannot be read for verification."""


@dataclass(frozen=True)
class Difference:
    """One way the image differs from its lock, for one package."""

    package: str
    kind: Kind
    detail: str

    def describe(self) -> str:
        return f"{self.kind:<8} {self.package}: {self.detail}"

    def to_json(self) -> dict:
        return {"package": self.package, "kind": self.kind, "detail": self.detail}


def describe(package: LockedPackage) -> str:
    """``name version build``, how the diff names a package."""
    return f"{package.name} {package.version} {package.build}"


def packages_from_lock(
    packages: Iterable[LockedPackage], *, platform: str = DEFAULT_PLATFORM
) -> dict[str, LockedPackage]:
    """The conda packages of ``platform`` by name; pip packages are not in conda-meta."""
    return conda_packages(packages, platform=platform)


def packages_from_meta(records: Iterable[Mapping]) -> dict[str, LockedPackage]:
    """Installed packages from ``conda-meta/*.json`` records, by name."""
    return conda_packages(LockedPackage.from_conda_meta(r) for r in records)


def diff_packages(
    *, locked: Mapping[str, LockedPackage], installed: Mapping[str, LockedPackage]
) -> tuple[Difference, ...]:
    """Missing (locked, not installed), extra (installed, not locked) and changed packages.

    A field the lock leaves empty (an old lock without sha256) is not compared.
    """
    out = []
    for name in sorted(set(locked) | set(installed)):
        want, have = locked.get(name), installed.get(name)
        if have is None:
            out.append(Difference(name, "missing", f"locked {describe(want)} is not installed"))
        elif want is None:
            out.append(Difference(name, "extra", f"{describe(have)} is installed but not locked"))
        else:
            changes = [
                f"{word} {getattr(want, attr)} (lock) != {getattr(have, attr) or '(none)'} (image)"
                for word, attr in FIELDS
                if getattr(want, attr) and getattr(want, attr) != getattr(have, attr)
            ]
            if changes:
                out.append(Difference(name, "changed", "; ".join(changes)))
    return tuple(out)


def file_differences(
    records: Iterable[Mapping], files: Mapping[str, str], *, limit: int = 3
) -> tuple[Difference, ...]:
    """Files a package's conda-meta lists whose content is gone or other than recorded.

    ``files`` maps ``opt/env/<path>`` to the sha256 hex of the file in the image. Only
    regular files with a recorded sha256 are checked (``sha256_in_prefix`` when the
    installer rewrote the prefix, else ``sha256``).
    """
    out = []
    for record in sorted(records, key=lambda r: str(r["name"])):
        problems = []
        for entry in (record.get("paths_data") or {}).get("paths") or ():
            if entry.get("path_type", "hardlink") != "hardlink":
                continue
            expected = entry.get("sha256_in_prefix") or entry.get("sha256")
            if not expected:
                continue
            path = f"{PREFIX}/{entry['_path']}"
            actual = files.get(path)
            if actual is None:
                problems.append(f"{entry['_path']} is missing")
            elif actual != expected:
                problems.append(
                    f"{entry['_path']} has sha256 {actual[:12]}.., recorded {expected[:12]}.."
                )
        if problems:
            more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
            out.append(Difference(str(record["name"]), "file", "; ".join(problems[:limit]) + more))
    return tuple(out)


# -- reading a lock --------------------------------------------------------------------------


def locked_packages(path: Path, *, platform: str = DEFAULT_PLATFORM) -> dict[str, LockedPackage]:
    """The lock's conda packages for ``platform`` (read with conda-lock's parser)."""
    from spawner.lock.condalock import read_lockfile

    packages = packages_from_lock(packages_of(read_lockfile(Path(path))), platform=platform)
    if not packages:
        raise VerifyError(
            f"{path}: the lock has no {platform} conda packages; "
            f"lock for {platform} with `lockstep lock --platform {platform}`"
        )
    return packages


def lock_hashes(path: Path, *, platform: str = DEFAULT_PLATFORM) -> list[str]:
    """The hashes an image built from this lock may carry as its lock-hash label."""
    from spawner.image.build import lock_hash  # the one definition, the image builder's

    return [lock_hash(Path(path))]
