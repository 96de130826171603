"""Each locked pip package's own dependencies, as conda-lock writes them in the lock.

Guarantees: ``dependencies`` turns a distribution's ``Requires-Dist`` lines into
conda-lock's ``dependencies: {name: version-spec}`` mapping (its pypi solver writes
``{dep.name: str(dep.constraint)}``: canonical names, ``*`` for no pin, a bare version for
``==X``, lower bounds before upper ones), keeping only the requirements whose markers hold
on the platform (``marker_env``: the platform's ``sys_platform``, machine, the solved
python; ``extra`` empty, so requirements of extras are left out). Pure.

``read_requires`` gives a locked file's ``Requires-Dist`` lines: from a small cache keyed
by the file's sha256 (``<cache>/pip-metadata/<sha256>``), else from the file itself,
fetched into the wheel cache and verified against the lock's sha256 before it is opened
(``pipinstall.fetch_wheel``; a wheel's ``*.dist-info/METADATA``, an sdist's ``PKG-INFO``).
An sdist whose metadata leaves ``Requires-Dist`` dynamic gives ``None`` (the caller falls
back to uv's names). No package code runs; it must not import rattler or conda-lock.
"""

from __future__ import annotations

import os
import re
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from email.parser import HeaderParser
from pathlib import Path

from packaging.markers import InvalidMarker, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import Specifier
from packaging.utils import canonicalize_name

from spawner.lock.pipinstall import Wheel, fetch_wheel
from spawner.lock.pipwheels import WHEEL_NAME_RE

PLATFORM_MARKERS = {
    "linux-64": ("linux", "Linux", "posix", "x86_64"),
    "linux-aarch64": ("linux", "Linux", "posix", "aarch64"),
    "osx-64": ("darwin", "Darwin", "posix", "x86_64"),
    "osx-arm64": ("darwin", "Darwin", "posix", "arm64"),
    "win-64": ("win32", "Windows", "nt", "AMD64"),
}


def marker_env(platform: str, python: str) -> dict[str, str]:
    """The PEP 508 marker values of CPython ``python`` (``3.11.9``) on a conda platform."""
    sys_platform, system, os_name, machine = PLATFORM_MARKERS[platform]
    full = python if python.count(".") >= 2 else f"{python}.0"
    return {
        "sys_platform": sys_platform,
        "platform_system": system,
        "os_name": os_name,
        "platform_machine": machine,
        "python_version": ".".join(full.split(".")[:2]),
        "python_full_version": full,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "implementation_version": full,
        "platform_release": "",
        "platform_version": "",
        "extra": "",
    }


def _spec_text(specs: Sequence[Specifier]) -> str:
    if not specs:
        return "*"
    if len(specs) == 1 and specs[0].operator in ("==", "==="):
        return specs[0].version
    ordered = sorted(specs, key=lambda s: (not s.operator.startswith(">"), s.operator, s.version))
    return ",".join(str(s) for s in ordered)


def dependencies(requires: Sequence[str], *, platform: str, python: str) -> dict[str, str]:
    """``{name: spec}`` of the ``Requires-Dist`` lines that apply on ``platform``."""
    env = marker_env(platform, python)
    found: dict[str, list[Specifier]] = {}
    for line in requires:
        try:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(env):
                continue
        except (InvalidRequirement, InvalidMarker, UndefinedEnvironmentName):
            continue
        specs = found.setdefault(canonicalize_name(requirement.name), [])
        if not requirement.url:
            specs.extend(s for s in requirement.specifier if s not in specs)
    return {name: _spec_text(specs) for name, specs in sorted(found.items())}


def parse_requires(metadata: str) -> list[str] | None:
    """The ``Requires-Dist`` values of a METADATA/PKG-INFO text; None when they are
    dynamic (an sdist's PKG-INFO before metadata 2.2, or ``Dynamic: Requires-Dist``)."""
    headers = HeaderParser().parsestr(metadata)
    dynamic = {d.strip().lower() for d in headers.get_all("Dynamic") or []}
    if "requires-dist" in dynamic:
        return None
    return [str(v).strip() for v in headers.get_all("Requires-Dist") or []]


def read_requires(
    *,
    name: str,
    version: str,
    url: str,
    sha256: str,
    cache_dir: Path,
    mirrors: Mapping[str, str],
) -> list[str] | None:
    """A locked file's ``Requires-Dist`` lines (see the module guarantees)."""
    cached = Path(cache_dir) / "pip-metadata" / sha256
    if cached.is_file():
        return parse_requires(cached.read_text())
    wheel = Wheel(name=name, version=version, url=url, sha256=sha256)
    path = fetch_wheel(wheel, cache_dir=cache_dir, mirrors=mirrors, sdist_ok=True)
    text = _wheel_metadata(path) if WHEEL_NAME_RE.match(wheel.filename) else _sdist_metadata(path)
    if WHEEL_NAME_RE.match(wheel.filename) or _sdist_static(text):
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=cached.parent)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, cached)
        return parse_requires(text)
    return None


def _sdist_static(text: str) -> bool:
    match = re.search(r"^Metadata-Version:\s*(\d+)\.(\d+)", text, re.M)
    return bool(match) and (int(match[1]), int(match[2])) >= (2, 2)


def _wheel_metadata(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        member = next(
            (
                n
                for n in sorted(archive.namelist())
                if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)
            ),
            None,
        )
        return archive.read(member).decode("utf-8", "replace") if member else ""


def _sdist_metadata(path: Path) -> str:
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            member = next(
                (n for n in sorted(archive.namelist()) if re.fullmatch(r"[^/]+/PKG-INFO", n)), None
            )
            return archive.read(member).decode("utf-8", "replace") if member else ""
    with tarfile.open(path, "r:gz") as archive:
        member = next(
            (
                m
                for m in archive.getmembers()
                if m.isfile() and re.fullmatch(r"[^/]+/PKG-INFO", m.name)
            ),
            None,
        )
        handle = archive.extractfile(member) if member else None
        return handle.read().decode("utf-8", "replace") if handle else ""
