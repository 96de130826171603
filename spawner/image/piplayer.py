"""The pip packages of a staged prefix, as the layer builder sees them.

Guarantees: a distribution counts as a pip package only when its ``*.dist-info/INSTALLER``
says ``lockstep`` (``spawner.lock.pipinstall`` wrote it); a conda package's dist-info is
never taken for one. Each is keyed ``pypi:<name>`` (so it cannot collide with a conda
package's name) and owns exactly the files its ``RECORD`` lists, resolved against
``site-packages`` and kept only when they stay inside the prefix; ``.pyc`` files follow
their source (``envlayout``). Pure reads of the staging folder; it writes nothing and
must not import rattler or conda-lock.
"""

from __future__ import annotations

import posixpath
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from spawner.lock.package import LockedPackage

KEY_PREFIX = "pypi:"
INSTALLER = "lockstep"


def site_packages(prefix: Path) -> list[Path]:
    return sorted(Path(prefix).glob("lib/python*/site-packages"))


def _depends(metadata: str) -> tuple[str, ...]:
    names = set()
    for value in HeaderParser().parsestr(metadata).get_all("Requires-Dist") or []:
        try:
            requirement = Requirement(value)
        except InvalidRequirement:
            continue
        if requirement.marker is None or "extra" not in str(requirement.marker):
            names.add(KEY_PREFIX + canonicalize_name(requirement.name))
    return tuple(sorted(names))


def read_pip_installed(prefix: Path) -> tuple[dict[str, LockedPackage], dict[str, str]]:
    """``pypi:<name>`` -> package, and prefix-relative path -> owning key."""
    prefix = Path(prefix)
    packages: dict[str, LockedPackage] = {}
    owner: dict[str, str] = {}
    for site in site_packages(prefix):
        base = site.relative_to(prefix).as_posix()
        for info in sorted(site.glob("*.dist-info")):
            installer = info / "INSTALLER"
            if not installer.is_file() or installer.read_text().strip() != INSTALLER:
                continue
            metadata = (info / "METADATA").read_text(errors="replace")
            headers = HeaderParser().parsestr(metadata)
            name = canonicalize_name(headers.get("Name", info.name.split("-")[0]))
            key = KEY_PREFIX + name
            packages[key] = LockedPackage(
                name=name, version=str(headers.get("Version", "")), manager="pip",
                dependencies=tuple(d for d in _depends(metadata) if d != key),
            )
            for line in (info / "RECORD").read_text().splitlines():
                path = line.rsplit(",", 2)[0] if line.count(",") >= 2 else line
                rel = posixpath.normpath(posixpath.join(base, path))
                if rel.startswith("../") or rel.startswith("/"):
                    continue
                owner[rel] = key
    known = set(packages)
    packages = {
        k: LockedPackage(name=p.name, version=p.version, manager="pip",
                         dependencies=tuple(d for d in p.dependencies if d in known))
        for k, p in packages.items()
    }
    return packages, owner


def installed_pip(prefix: Path) -> dict[str, LockedPackage]:
    """The pip packages lockstep installed in ``prefix``, by canonical name."""
    packages, _owner = read_pip_installed(prefix)
    return {p.name: p for p in packages.values()}
