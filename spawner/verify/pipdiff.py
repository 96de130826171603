"""Does an image hold exactly the pip packages of its lock? The pure diff for pip.

A pip package lockstep installed carries ``*.dist-info/INSTALLER`` with the text
``lockstep`` (``spawner.lock.pipinstall``), so the image's pip packages are the dist-info
folders whose ``INSTALLER`` has that content's sha256 (the image reader always hashes
``INSTALLER`` files); name and version come from the folder name. They are compared with
the lock's ``manager: pip`` entries of the platform by canonical name and version. A
conda package's own dist-info is never taken for a pip package. Pure apart from
``locked_pip``, which reads the lock; it must not import rattler.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from packaging.utils import canonicalize_name

from spawner.image.reader import PREFIX
from spawner.verify.diff import Difference

INSTALLER_SHA = hashlib.sha256(b"lockstep\n").hexdigest()
INFO_RE = re.compile(
    rf"^{re.escape(PREFIX)}/lib/python[^/]+/site-packages/"
    r"(?P<name>[^/-]+)-(?P<version>[^/-]+)\.dist-info/INSTALLER$"
)


def pip_from_files(files: Mapping[str, str]) -> dict[str, str]:
    """Canonical name -> version of the pip packages lockstep installed in the image."""
    found = {}
    for path, sha in files.items():
        match = INFO_RE.match(path)
        if match and sha == INSTALLER_SHA:
            found[canonicalize_name(match["name"])] = match["version"]
    return dict(sorted(found.items()))


def locked_pip(path: Path, *, platform: str) -> dict[str, str]:
    """Canonical name -> version of the lock's pip packages for ``platform``."""
    from spawner.lock.condalock import read_lockfile

    return {
        canonicalize_name(p.name): str(p.version)
        for p in read_lockfile(Path(path)).package
        if p.manager == "pip" and p.platform == platform
    }


def diff_pip(*, locked: Mapping[str, str], installed: Mapping[str, str]) -> tuple[Difference, ...]:
    """Missing, extra and changed pip packages, named ``pypi:<name>``, sorted."""
    out = []
    for name in sorted(set(locked) | set(installed)):
        want, have = locked.get(name), installed.get(name)
        label = f"pypi:{name}"
        if have is None:
            out.append(Difference(label, "missing", f"locked pip {name} {want} is not installed"))
        elif want is None:
            out.append(Difference(label, "extra", f"pip {name} {have} is installed but not locked"))
        elif want != have:
            out.append(Difference(label, "changed", f"version {want} (lock) != {have} (image)"))
    return tuple(out)
