"""Write real ``.conda`` (format v2) archives, byte-for-byte reproducibly.

A package is described by a frozen :class:`PackageSpec` (metadata plus a tuple of
:class:`PkgFile`). :func:`render_info` turns it into the ``info/`` files (pure), and
:func:`write_conda` writes the archive (the only I/O here).

Guarantees
----------
* The same ``PackageSpec`` always gives the same archive bytes: tar entries are sorted,
  mtimes, owners and permissions are fixed, zstd runs single-threaded at a fixed level
  and the outer zip uses a fixed date and no compression (as conda does).
* ``info/paths.json`` lists every file with its sha256 and size; text files that hold
  the build prefix carry ``prefix_placeholder`` and ``file_mode: text`` so that conda
  and rattler rewrite them at install time.

This module must not read the build machine (no ``sysconfig``, no cwd, no environment).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

#: The prefix baked into files at build time; rattler/conda replace it at install time.
#: Long (like conda-build's ``_h_env_placehold...``) so that it never collides with a
#: real path, and it is only ever used in text files.
PLACEHOLDER = "/opt/lockstep-build/_h_env_placehold_placehold_placehold_placehold_placehold"

#: Build time of every package (milliseconds since the epoch): fixed for reproducibility.
TIMESTAMP_MS = 1704067200000  # 2024-01-01T00:00:00Z
_MTIME = TIMESTAMP_MS // 1000
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ZSTD_LEVEL = 3


class BuildInputMissing(RuntimeError):
    """A build input (CPython, a tool, a wheel) is not available; the message says how to get it."""


@dataclass(frozen=True)
class PkgFile:
    """One file (or symlink) in a package, relative to the prefix.

    Attributes
    ----------
    path:
        Forward-slash path inside the prefix, e.g. ``bin/python3.11``.
    data:
        File contents; for a symlink, empty.
    mode:
        Permission bits (``0o755`` for executables).
    link_target:
        Symlink target (relative), or ``None`` for a regular file.
    has_prefix:
        True when ``data`` holds :data:`PLACEHOLDER` and must be rewritten on install.
    """

    path: str
    data: bytes = b""
    mode: int = 0o644
    link_target: str | None = None
    has_prefix: bool = False


@dataclass(frozen=True)
class PackageSpec:
    """Metadata and payload of one conda package.

    ``subdir`` is ``"noarch"`` (with ``noarch="generic"``) or a platform of
    :data:`SUBDIR_ARCH` (``"linux-64"``, ``"osx-arm64"``, ...).
    """

    name: str
    version: str
    build: str
    subdir: str
    files: tuple[PkgFile, ...] = ()
    depends: tuple[str, ...] = ()
    constrains: tuple[str, ...] = ()
    build_number: int = 0
    license: str = ""
    summary: str = ""
    noarch: str | None = None
    extra_info: tuple[tuple[str, bytes], ...] = field(default=())

    @property
    def filename(self) -> str:
        """``name-version-build.conda``, the archive's file name in the channel."""
        return f"{self.name}-{self.version}-{self.build}.conda"


def index_json(spec: PackageSpec) -> dict:
    """Return ``info/index.json`` for ``spec`` (keys sorted on write)."""
    index: dict = {
        "name": spec.name,
        "version": spec.version,
        "build": spec.build,
        "build_number": spec.build_number,
        "depends": sorted(spec.depends),
        "constrains": sorted(spec.constrains),
        "license": spec.license,
        "subdir": spec.subdir,
        "timestamp": TIMESTAMP_MS,
    }
    if spec.noarch:
        index["noarch"] = spec.noarch
    elif spec.subdir in SUBDIR_ARCH:
        index["platform"], index["arch"] = SUBDIR_ARCH[spec.subdir]
    return index


#: ``(platform, arch)`` of ``info/index.json`` for each subdir, as conda-build writes them.
SUBDIR_ARCH = {
    "linux-64": ("linux", "x86_64"),
    "linux-aarch64": ("linux", "aarch64"),
    "osx-64": ("osx", "x86_64"),
    "osx-arm64": ("osx", "arm64"),
    "win-64": ("win", "x86_64"),
}


def paths_json(spec: PackageSpec) -> dict:
    """Return ``info/paths.json`` (paths_version 1) for ``spec``."""
    entries = []
    for f in sorted(spec.files, key=lambda f: f.path):
        if f.link_target is not None:
            entries.append({"_path": f.path, "path_type": "softlink"})
            continue
        entry = {
            "_path": f.path,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(f.data).hexdigest(),
            "size_in_bytes": len(f.data),
        }
        if f.has_prefix:
            entry["file_mode"] = "text"
            entry["prefix_placeholder"] = PLACEHOLDER
        entries.append(entry)
    return {"paths": entries, "paths_version": 1}


def render_info(spec: PackageSpec) -> dict[str, bytes]:
    """Return every ``info/`` file of ``spec``, keyed by archive path."""

    def dump(obj: dict) -> bytes:
        return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()

    about = {"license": spec.license, "summary": spec.summary or spec.name}
    files = "".join(f"{f.path}\n" for f in sorted(spec.files, key=lambda f: f.path))
    has_prefix = "".join(
        f'{PLACEHOLDER} text "{f.path}"\n'
        for f in sorted(spec.files, key=lambda f: f.path)
        if f.has_prefix
    )
    info = {
        "info/index.json": dump(index_json(spec)),
        "info/paths.json": dump(paths_json(spec)),
        "info/about.json": dump(about),
        "info/files": files.encode(),
    }
    if has_prefix:
        info["info/has_prefix"] = has_prefix.encode()
    info.update({f"info/{name}": data for name, data in spec.extra_info})
    return info


def _tar_zst(members: list[PkgFile]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for f in sorted(members, key=lambda f: f.path):
            info = tarfile.TarInfo(f.path)
            info.mtime = _MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if f.link_target is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = f.link_target
                info.mode = 0o777
                tar.addfile(info)
            else:
                info.size = len(f.data)
                info.mode = f.mode
                tar.addfile(info, io.BytesIO(f.data))
    return zstandard.ZstdCompressor(level=_ZSTD_LEVEL, threads=0).compress(raw.getvalue())


def conda_bytes(spec: PackageSpec) -> bytes:
    """Return the complete ``.conda`` archive for ``spec`` (pure, deterministic)."""
    stem = spec.filename[: -len(".conda")]
    info = [PkgFile(path, data) for path, data in render_info(spec).items()]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in (
            ("metadata.json", b'{"conda_pkg_format_version": 2}'),
            (f"pkg-{stem}.tar.zst", _tar_zst(list(spec.files))),
            (f"info-{stem}.tar.zst", _tar_zst(info)),
        ):
            entry = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            entry.external_attr = 0o644 << 16
            zf.writestr(entry, data)
    return out.getvalue()


def write_conda(spec: PackageSpec, channel_dir: Path) -> Path:
    """Write ``spec`` to ``channel_dir/<subdir>/<filename>`` and return that path."""
    target = channel_dir / spec.subdir / spec.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(conda_bytes(spec))
    return target
