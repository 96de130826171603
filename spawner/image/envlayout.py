"""From an installed (staged) conda prefix to layer entries, package by package.

Guarantees: every file and symlink under the staging prefix lands in exactly one layer,
at ``opt/env/<path>``: in the layer of the package whose ``conda-meta/<pkg>.json`` lists
it (or, for a pip package lockstep installed, whose ``RECORD`` lists it: see ``piplayer``),
a ``__pycache__/*.pyc`` in the layer of its ``.py`` source, anything unowned in the
``extra`` list, and ``conda-meta/`` (normalised: no host paths) in its own list. py-rattler's
``CACHEDIR.TAG`` is dropped. Staged files are only read, never changed (they are
hardlinks into the package cache).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from spawner.image.grouping import PackageInfo
from spawner.image.piplayer import read_pip_installed
from spawner.image.tarlayer import Entry, entry_for_path
from spawner.lock.package import LockedPackage
from spawner.settings import ENV_PREFIX

LAYER_ROOT = ENV_PREFIX.lstrip("/")
DROPPED = frozenset({"CACHEDIR.TAG"})
HOST_KEYS = ("extracted_package_dir", "package_tarball_full_path", "url_local")
PYC_RE = re.compile(r"^(?P<dir>(?:.*/)?)__pycache__/(?P<stem>[^/.]+)\.[^/]*\.pyc$")


@dataclass
class Layout:
    """Layer entries per package name, the unowned ``extra`` entries and the ``meta`` entries."""

    packages: dict[str, LockedPackage]
    owned: dict[str, list[Entry]] = field(default_factory=dict)
    extra: list[Entry] = field(default_factory=list)
    meta: list[Entry] = field(default_factory=list)

    def package_infos(self) -> list[PackageInfo]:
        """Sizes (installed bytes, bytecode not counted: it may still be compiling, and
        whether it came from the .pyc cache must not move a group) and dependency names,
        for the grouping."""
        infos = []
        for name, pkg in sorted(self.packages.items()):
            size = sum(
                os.lstat(e.source).st_size
                for e in self.owned.get(name, [])
                if e.source and not PYC_RE.match(e.path)
            )
            infos.append(PackageInfo(name, size, pkg.dependencies))
        return infos


def read_installed(prefix: Path) -> tuple[dict[str, LockedPackage], dict[str, str]]:
    """Every package record in ``prefix/conda-meta``, by name, and each listed file's owner."""
    packages, owner = {}, {}
    for path in sorted((Path(prefix) / "conda-meta").glob("*.json")):
        record = json.loads(path.read_text())
        package = LockedPackage.from_conda_meta(record)
        packages[package.name] = package
        owner.update({f: package.name for f in record.get("files", [])})
    return packages, owner


def normalise_meta(record: dict, *, staging: str, prefix: str = ENV_PREFIX) -> dict:
    """A conda-meta record without host paths; returns a new dict (input untouched)."""
    out = {k: v for k, v in record.items() if k not in HOST_KEYS}
    if isinstance(out.get("link"), dict):
        out["link"] = {k: v for k, v in out["link"].items() if k != "source"}

    def scrub(value):
        if isinstance(value, str):
            return value.replace(staging, prefix)
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        return value

    return scrub(out)


def pyc_source(rel: str) -> str | None:
    """``a/__pycache__/b.cpython-311.pyc`` -> ``a/b.py``; None for other paths."""
    match = PYC_RE.match(rel)
    return f"{match['dir']}{match['stem']}.py" if match else None


def _walk(root: Path) -> Iterable[tuple[str, str, bool]]:
    """(relative path, host path, is_empty_dir) for files, symlinks and empty dirs."""
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        names = filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        if not names and not dirnames and rel_dir:
            yield rel_dir.rstrip("/"), dirpath, True
        for name in names:
            yield rel_dir + name, os.path.join(dirpath, name), False


def _meta_entries(staging: Path) -> list[Entry]:
    entries = []
    meta_dir = staging / "conda-meta"
    for path in sorted(meta_dir.iterdir()) if meta_dir.is_dir() else []:
        rel = f"{LAYER_ROOT}/conda-meta/{path.name}"
        if path.suffix == ".json":
            record = normalise_meta(json.loads(path.read_text()), staging=str(staging))
            data = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
            entries.append(Entry(rel, "file", 0o644, data=data))
        elif path.name == "history":
            entries.append(Entry(rel, "file", 0o644, data=b""))
        elif path.is_file() and not path.is_symlink():
            entries.append(Entry(rel, "file", 0o644, data=path.read_bytes()))
    return entries


def layout_prefix(staging: Path) -> Layout:
    """Assign every path of the staged prefix to its package (see the module guarantees)."""
    staging = Path(staging)
    packages, owner = read_installed(staging)
    pip_packages, pip_owner = read_pip_installed(staging)  # ``pypi:<name>``, own layers
    packages.update(pip_packages)
    owner.update({path: key for path, key in pip_owner.items() if path not in owner})
    layout = Layout(packages=packages, owned={name: [] for name in packages})
    for rel, host, empty_dir in _walk(staging):
        if rel in DROPPED or rel == "conda-meta" or rel.startswith("conda-meta/"):
            continue
        layer_path = f"{LAYER_ROOT}/{rel}"
        if empty_dir:
            layout.extra.append(Entry(layer_path, "dir", 0o755))
            continue
        name = owner.get(rel) or owner.get(pyc_source(rel) or "")
        entry = entry_for_path(host, layer_path)
        (layout.owned[name] if name else layout.extra).append(entry)
    layout.meta = _meta_entries(staging)
    return layout
