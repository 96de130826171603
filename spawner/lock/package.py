"""One locked package: the single model of "a package a lock pins" in lockstep.

``LockedPackage`` is what the installer fetches and verifies (``lock.fetch``,
``lock.install``), what ``lockstep verify`` compares with an image's ``conda-meta``
(``verify.diff``) and what a bill of materials lists (``sbom.cyclonedx``). It is built from
a conda-lock entry (``from_conda_lock``, ``packages_of``) or from an installed
``conda-meta/*.json`` record (``from_conda_meta``), so both sides of a comparison are the
same type and derive file name and build string the same way.

Guarantees: the model is frozen and pure (no file, network or clock); the build string
is the one the entry states, else read from the archive's file name
(``name-version-build.conda``), and '' for pip packages; dependencies are sorted names.
It must not import conda-lock or rattler: conda-lock's models are read by attribute, and
``spawner.lock.condalock`` stays the one door to conda-lock itself.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

ARCHIVE_SUFFIXES = (".conda", ".tar.bz2")


@dataclass(frozen=True)
class LockedPackage:
    """One package of one platform, as a lock pins it (or an installed record states it).

    Attributes
    ----------
    manager
        ``conda`` or ``pip``.
    url
        Where the archive is downloaded from (a channel, a mirror, ``file://``).
    dependencies
        Names of the packages it depends on, sorted.
    build_string
        The build string as the entry states it ('' when it does not; see ``build``).
    fn
        The archive's file name when the record states it apart from the URL (conda-meta's
        ``fn``; a mirror may serve the file under another URL); else read from ``url``.
    """

    name: str
    version: str
    manager: str = "conda"
    platform: str = ""
    url: str = ""
    sha256: str = ""
    md5: str = ""
    dependencies: tuple[str, ...] = ()
    build_string: str = ""
    fn: str = ""

    @property
    def filename(self) -> str:
        """The archive's file name (``numpy-2.0-py311_0.conda``)."""
        return self.fn or posixpath.basename(urlsplit(self.url).path.rstrip("/"))

    @property
    def subdir(self) -> str:
        """The channel subdir the URL names (``linux-64``, ``noarch``), '' when none."""
        parts = urlsplit(self.url).path.rstrip("/").split("/")
        return parts[-2] if len(parts) >= 2 else ""

    @property
    def stem(self) -> str:
        """``name-version-build``: the package cache folder and the conda-meta file name."""
        return archive_stem(self.filename)

    @property
    def build(self) -> str:
        """The build string: the entry's, else from ``name-version-build.conda`` ('' for pip)."""
        if self.build_string or self.manager != "conda":
            return self.build_string
        return archive_build(self.name, self.version, self.filename)

    @property
    def label(self) -> str:
        """``name version (build)``, how messages name the package."""
        return f"{self.name} {self.version} ({self.build})"

    @classmethod
    def from_conda_lock(cls, dep: Any) -> LockedPackage:
        """From one entry of conda-lock's ``Lockfile.package`` (a ``LockedDependency``)."""
        digests = getattr(dep, "hash", None)
        return cls(
            name=dep.name, version=str(dep.version), manager=dep.manager,
            platform=getattr(dep, "platform", "") or "", url=dep.url or "",
            sha256=getattr(digests, "sha256", None) or "", md5=getattr(digests, "md5", None) or "",
            dependencies=tuple(sorted(getattr(dep, "dependencies", None) or {})),
            build_string=getattr(dep, "build", None) or "",
        )

    @classmethod
    def from_conda_meta(cls, record: Mapping[str, Any], platform: str = "") -> LockedPackage:
        """From one installed ``conda-meta/*.json`` record (rattler's or conda's)."""
        depends = record.get("depends") or ()
        return cls(
            name=str(record["name"]), version=str(record.get("version", "")), manager="conda",
            platform=platform, url=str(record.get("url") or ""),
            sha256=str(record.get("sha256") or ""), md5=str(record.get("md5") or ""),
            dependencies=tuple(sorted({str(d).split()[0] for d in depends if str(d).strip()})),
            build_string=str(record.get("build") or record.get("build_string") or ""),
            fn=str(record.get("fn") or ""),
        )


def archive_stem(filename: str) -> str:
    """``numpy-1.26.4-py311h_0.conda`` -> ``numpy-1.26.4-py311h_0``; other names unchanged."""
    for suffix in ARCHIVE_SUFFIXES:
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return filename


def archive_build(name: str, version: str, filename: str) -> str:
    """The build string in a conda archive's file name; '' when it is not an archive name."""
    stem = archive_stem(filename)
    if stem == filename:
        return ""
    prefix = f"{name}-{version}-"
    return stem[len(prefix):] if stem.startswith(prefix) else stem.rsplit("-", 1)[-1]


def packages_of(lockfile: Any, platform: str | None = None) -> list[LockedPackage]:
    """Every entry of a parsed lock (conda-lock's ``Lockfile``), of ``platform`` if given."""
    return [LockedPackage.from_conda_lock(p) for p in lockfile.package
            if platform is None or p.platform == platform]


def conda_packages(
    packages: Iterable[LockedPackage], *, platform: str | None = None
) -> dict[str, LockedPackage]:
    """The conda packages (of ``platform`` if given) by name, sorted by name."""
    chosen = {p.name: p for p in packages
              if p.manager == "conda" and (platform is None or p.platform == platform)}
    return dict(sorted(chosen.items()))
