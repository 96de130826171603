"""Does an image hold exactly the packages of its lock? The pure diff, and the reader.

The pure half compares two package sets, the lock's (``conda-lock.yml``, one platform)
and the image's (``/opt/env/conda-meta/*.json``), on name, version, build, sha256 and
file name (the last part of the URL: a mirror may serve the same file from another host),
and checks every file a conda-meta record lists against the sha256 it records, so a
package file changed after install is named as well. Output is sorted by package name.

The I/O half reads an image straight from its registry, without a Docker daemon: the
manifest, the config (for the ``org.lockstep.lock-hash`` label) and the layers, bottom
first, applying OCI whiteouts, keeping only what lies under ``/opt/env``. It only reads.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from spawner.errors import LockstepError
from spawner.settings import ENV_PREFIX

PREFIX = ENV_PREFIX.strip("/")  # "opt/env", as layer paths are written
META_DIR = f"{PREFIX}/conda-meta/"
LOCK_LABEL = "org.lockstep.lock-hash"
PROJECT_LABEL = "org.lockstep.project"
DEFAULT_PLATFORM = "linux-64"
FIELDS = ("version", "build", "sha256", "file")

Kind = Literal["missing", "extra", "changed", "file"]


class VerifyError(LockstepError):
    """An image or lock that cannot be read for verification."""


@dataclass(frozen=True)
class PackageId:
    """What identifies an installed conda package: name, version, build, sha256, file name."""

    name: str
    version: str
    build: str
    sha256: str = ""
    file: str = ""

    def describe(self) -> str:
        return f"{self.name} {self.version} {self.build}"


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


def file_name(url: str) -> str:
    """The archive's file name from a URL or path (``.../numpy-1.26-py311h_0.conda``)."""
    return posixpath.basename(url.split("?", 1)[0].rstrip("/")) if url else ""


def build_from_file(name: str) -> str:
    """``numpy-1.26.4-py311h64a7726_0.conda`` -> ``py311h64a7726_0``."""
    stem = name.removesuffix(".conda").removesuffix(".tar.bz2")
    parts = stem.rsplit("-", 2)
    return parts[2] if len(parts) == 3 else ""


def packages_from_lock(
    entries: Iterable[Mapping], *, platform: str = DEFAULT_PLATFORM
) -> dict[str, PackageId]:
    """Conda packages of ``platform`` from lock entries (conda-lock's ``package`` list).

    Entries are mappings with ``name``, ``version``, ``manager``, ``platform``, ``url``,
    ``hash: {sha256}`` and optionally ``build``; pip entries are not in conda-meta and
    are left out.
    """
    out = {}
    for entry in entries:
        if entry.get("manager", "conda") != "conda" or entry.get("platform") != platform:
            continue
        fname = file_name(str(entry.get("url", "")))
        sha = (entry.get("hash") or {}).get("sha256") or ""
        out[str(entry["name"])] = PackageId(
            name=str(entry["name"]),
            version=str(entry["version"]),
            build=str(entry.get("build") or build_from_file(fname)),
            sha256=str(sha),
            file=fname,
        )
    return dict(sorted(out.items()))


def packages_from_meta(records: Iterable[Mapping]) -> dict[str, PackageId]:
    """Installed packages from ``conda-meta/*.json`` records."""
    out = {}
    for record in records:
        fname = str(record.get("fn") or file_name(str(record.get("url", ""))))
        out[str(record["name"])] = PackageId(
            name=str(record["name"]),
            version=str(record.get("version", "")),
            build=str(record.get("build") or record.get("build_string") or ""),
            sha256=str(record.get("sha256") or ""),
            file=fname,
        )
    return dict(sorted(out.items()))


def diff_packages(
    *, locked: Mapping[str, PackageId], installed: Mapping[str, PackageId]
) -> tuple[Difference, ...]:
    """Missing (locked, not installed), extra (installed, not locked) and changed packages.

    A field the lock leaves empty (an old lock without sha256) is not compared.
    """
    out = []
    for name in sorted(set(locked) | set(installed)):
        want, have = locked.get(name), installed.get(name)
        if have is None:
            out.append(Difference(name, "missing", f"locked {want.describe()} is not installed"))
        elif want is None:
            out.append(Difference(name, "extra", f"{have.describe()} is installed but not locked"))
        else:
            changes = [
                f"{attr} {getattr(want, attr)} (lock) != {getattr(have, attr) or '(none)'} (image)"
                for attr in FIELDS
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


# -- reading an image from its registry -----------------------------------------------------


@dataclass
class ImageContents:
    """What verification needs from an image: its labels, conda-meta and file hashes."""

    reference: str
    digest: str
    labels: dict[str, str]
    meta: dict[str, dict] = field(default_factory=dict)  # conda-meta file name -> record
    files: dict[str, str] = field(default_factory=dict)  # opt/env/<path> -> sha256 hex
    layers_read: int = 0
    bytes_read: int = 0

    @property
    def records(self) -> list[dict]:
        return [self.meta[k] for k in sorted(self.meta)]


def _normal(name: str) -> str:
    """A tar member name as a relative path: ``./opt/env/x`` and ``/opt/env/x`` -> ``opt/env/x``."""
    while name.startswith("./"):
        name = name[2:]
    name = posixpath.normpath(name.lstrip("/")) if name.strip("./") else ""
    return "" if name == "." else name


def _meta_key(path: str) -> str | None:
    if path.startswith(META_DIR) and path.endswith(".json") and "/" not in path[len(META_DIR) :]:
        return path
    return None


@dataclass
class LayerDelta:
    """What one layer does under ``/opt/env``: whiteouts, then the entries it adds."""

    removed: list[str] = field(default_factory=list)  # path; "dir/" for an opaque whiteout
    files: dict[str, str] = field(default_factory=dict)  # path -> sha256 hex ("" = not hashed)
    meta: dict[str, dict] = field(default_factory=dict)
    links: list[tuple[str, str]] = field(default_factory=list)  # hardlink path, target
    others: list[str] = field(default_factory=list)  # symlinks, devices: replace what was there


def read_layer(fileobj, *, hash_files: bool) -> LayerDelta:
    """Parse one layer (a tar stream, any compression tarfile detects) into a ``LayerDelta``.

    A gzip or plain layer is decompressed into memory and read with random access (the
    data of a member is hashed straight from the buffer, and skipped when not needed):
    several times faster than tarfile's stream mode, which other compressions fall back to.
    """
    raw = fileobj.read()
    if not raw:
        return LayerDelta()
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw)
    try:
        tar = tarfile.open(fileobj=io.BytesIO(raw), mode="r:")
    except tarfile.ReadError:  # zstd or another compression: tarfile's stream mode
        tar, raw = tarfile.open(fileobj=io.BytesIO(raw), mode="r|*"), None
    delta = LayerDelta()
    buffer = memoryview(raw) if raw is not None else None
    with tar:
        for member in tar:
            _member(delta, tar, member, buffer, hash_files)
    return delta


def _gunzip(data: bytes) -> bytes:
    """Every member of a gzip stream, decompressed and joined."""
    parts = []
    while data:
        inflater = zlib.decompressobj(wbits=31)
        parts.append(inflater.decompress(data))
        data = inflater.unused_data
    return b"".join(parts)


def _member(delta: LayerDelta, tar, member, buffer, hash_files: bool) -> None:
    path = _normal(member.name)
    base = posixpath.basename(path)
    if base.startswith(".wh."):
        parent = posixpath.dirname(path)
        delta.removed.append(
            parent + "/" if base == ".wh..wh..opq" else posixpath.join(parent, base[4:])
        )
        return
    if not path.startswith(PREFIX + "/") or member.isdir():
        return
    if member.islnk():
        delta.links.append((path, _normal(member.linkname)))
        return
    if not member.isfile():
        delta.others.append(path)
        return
    key = _meta_key(path)
    if key is None and not hash_files:
        delta.files[path] = ""
        return
    if buffer is not None:
        data = buffer[member.offset_data : member.offset_data + member.size]
    else:
        data = memoryview(tar.extractfile(member).read())
    delta.files[path] = hashlib.sha256(data).hexdigest()
    if key is not None:
        try:
            delta.meta[key] = json.loads(bytes(data))
        except ValueError:
            delta.meta[key] = {"name": posixpath.basename(key), "_invalid": True}


class _Tree:
    """The merged view of ``/opt/env``: file hashes and conda-meta, with their directories."""

    def __init__(self, contents: ImageContents):
        self.contents = contents
        self.dirs: set[str] = set()

    def remove(self, path: str) -> None:
        prefix = path if path.endswith("/") else path + "/"
        for table in (self.contents.files, self.contents.meta):
            table.pop(path, None)
            if prefix.rstrip("/") in self.dirs or prefix == "/":
                for key in [k for k in table if k.startswith(prefix) or prefix == "/"]:
                    del table[key]

    def add(self, path: str, sha: str) -> None:
        if path in self.dirs:  # a file replaces a directory of an earlier layer
            self.remove(path + "/")
        self.contents.files[path] = sha
        parent = posixpath.dirname(path)
        while parent and parent not in self.dirs:
            self.dirs.add(parent)
            parent = posixpath.dirname(parent)

    def apply(self, delta: LayerDelta) -> None:
        for path in delta.removed:
            self.remove(path)
        for path in delta.others:
            self.remove(path)
        for path, sha in delta.files.items():
            self.add(path, sha)
        self.contents.meta.update(delta.meta)
        for path, target in delta.links:
            self.add(path, self.contents.files.get(target, ""))


def apply_layer(contents: ImageContents, fileobj, *, hash_files: bool) -> None:
    """Apply one layer onto ``contents`` (what ``read_image`` does for each, bottom first)."""
    tree = _Tree(contents)
    tree.dirs = {posixpath.dirname(k) for k in contents.files}
    tree.dirs |= {p for k in list(tree.dirs) for p in _parents(k)}
    tree.apply(read_layer(fileobj, hash_files=hash_files))


def _parents(path: str) -> list[str]:
    out = []
    while path:
        path = posixpath.dirname(path)
        if path:
            out.append(path)
    return out


def _client(settings, host: str):
    from spawner.image.registry import RegistryClient

    return RegistryClient.for_host(host, insecure_registries=tuple(settings.insecure_registries))


def read_image(
    settings, reference: str, *, hash_files: bool = True, workers: int = 8
) -> ImageContents:
    """Read labels, conda-meta and (optionally) file hashes of ``reference`` from its registry."""
    from spawner.image.oci import parse_reference

    try:
        ref = parse_reference(reference)
    except ValueError as exc:
        raise VerifyError(str(exc)) from None
    with _client(settings, ref.host) as client:
        data, media_type, digest = client.get_manifest(
            ref.repository, ref.digest or ref.tag or "latest"
        )
        manifest = json.loads(data)
        if "manifests" in manifest:  # an index: take linux/amd64
            entries = [
                m
                for m in manifest["manifests"]
                if (m.get("platform") or {}).get("architecture", "amd64") == "amd64"
            ]
            if not entries:
                raise VerifyError(f"{reference} is an index with no linux/amd64 image")
            data, media_type, _ = client.get_manifest(ref.repository, entries[0]["digest"])
            manifest = json.loads(data)
        config = json.loads(client.get_blob(ref.repository, manifest["config"]["digest"]))
        labels = dict((config.get("config") or {}).get("Labels") or {})
        contents = ImageContents(f"{ref.name}@{digest}", digest, labels)
        layers = [layer["digest"] for layer in manifest.get("layers", [])]
        with tempfile.TemporaryDirectory(prefix="lockstep-verify-") as tmp:

            def fetch(layer: str) -> tuple[LayerDelta, int]:
                blob = Path(tmp) / layer.replace(":", "-")
                client.download_blob(ref.repository, layer, blob)
                try:
                    with blob.open("rb") as handle:
                        return read_layer(handle, hash_files=hash_files), blob.stat().st_size
                finally:
                    blob.unlink()

            with ThreadPoolExecutor(max(1, min(workers, len(layers)))) as pool:
                deltas = list(pool.map(fetch, layers))  # in layer order
        tree = _Tree(contents)
        for delta, size in deltas:
            tree.apply(delta)
            contents.bytes_read += size
            contents.layers_read += 1
    return contents


# -- reading a lock --------------------------------------------------------------------------


def _lock_entries(path: Path) -> tuple[list[dict], dict[str, str]]:
    """(package entries as plain dicts, content_hash per platform) via conda-lock's parser."""
    from spawner.lock.condalock import read_lockfile

    lockfile = read_lockfile(Path(path))
    entries = [
        {
            "name": p.name,
            "version": p.version,
            "manager": p.manager,
            "platform": p.platform,
            "url": p.url,
            "build": getattr(p, "build", None) or "",
            "hash": {"sha256": p.hash.sha256 or "", "md5": p.hash.md5 or ""},
        }
        for p in lockfile.package
    ]
    return entries, dict(lockfile.metadata.content_hash or {})


def locked_packages(path: Path, *, platform: str = DEFAULT_PLATFORM) -> dict[str, PackageId]:
    """The lock's conda packages for ``platform``."""
    entries, _ = _lock_entries(path)
    packages = packages_from_lock(entries, platform=platform)
    if not packages:
        raise VerifyError(
            f"{path}: the lock has no {platform} conda packages; "
            f"lock for {platform} with `lockstep lock --platform {platform}`"
        )
    return packages


def lock_hashes(path: Path, *, platform: str = DEFAULT_PLATFORM) -> list[str]:
    """The hashes an image built from this lock may carry as ``org.lockstep.lock-hash``."""
    from spawner.image.build import lock_hash  # the one definition, the image builder's

    return [lock_hash(Path(path))]
