"""Reading an image straight from its registry, without a Docker daemon.

``read_image`` fetches an image's manifest (from an index, the linux/amd64 one), its
config (for the labels) and its layers, bottom first, applying OCI whiteouts, and keeps
what lies under ``/opt/env``: the file hashes, the ``conda-meta`` records and each
built sdist's ``*.dist-info/LOCKSTEP_BUILT.json`` (``built``). Layers are
downloaded in parallel into a private temporary folder, parsed, and deleted; they are
applied in layer order. ``read_layer`` and ``apply_layer`` are the pure halves (a tar
stream in, a ``LayerDelta`` or updated ``ImageContents`` out).

Guarantees: it only reads (nothing is pushed, tagged or deleted in the registry, nothing
is left on disk); an image is identified by the digest the registry answered with. It must
not compare anything with a lock: that is ``spawner.verify.diff``.
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
import tarfile
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from spawner.errors import LockstepError
from spawner.settings import ENV_PREFIX

PREFIX = ENV_PREFIX.strip("/")  # "opt/env", as layer paths are written
META_DIR = f"{PREFIX}/conda-meta/"
BUILT_SUFFIX = ".dist-info/LOCKSTEP_BUILT.json"  # pipinstall.BUILT, in a dist-info


class ImageReadError(LockstepError):
    """An image reference or manifest that cannot be read."""


@dataclass
class ImageContents:
    """What verification needs from an image: its labels, conda-meta and file hashes."""

    reference: str
    digest: str
    labels: dict[str, str]
    meta: dict[str, dict] = field(default_factory=dict)  # conda-meta file name -> record
    files: dict[str, str] = field(default_factory=dict)  # opt/env/<path> -> sha256 hex
    built: dict[str, dict] = field(default_factory=dict)  # LOCKSTEP_BUILT.json path -> record
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
    built: dict[str, dict] = field(default_factory=dict)
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
    built = path.endswith(BUILT_SUFFIX)
    if key is None and not built and not hash_files and not path.endswith(".dist-info/INSTALLER"):
        delta.files[path] = ""  # INSTALLER is always hashed: it marks pip packages
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
    if built:
        try:
            delta.built[path] = json.loads(bytes(data))
        except ValueError:
            delta.built[path] = {"_invalid": True}


class _Tree:
    """The merged view of ``/opt/env``: file hashes and conda-meta, with their directories."""

    def __init__(self, contents: ImageContents):
        self.contents = contents
        self.dirs: set[str] = set()

    def remove(self, path: str) -> None:
        prefix = path if path.endswith("/") else path + "/"
        for table in (self.contents.files, self.contents.meta, self.contents.built):
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
        self.contents.built.update(delta.built)
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
        raise ImageReadError(str(exc)) from None
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
                raise ImageReadError(f"{reference} is an index with no linux/amd64 image")
            data, media_type, _ = client.get_manifest(ref.repository, entries[0]["digest"])
            manifest = json.loads(data)
        config = json.loads(client.get_blob(ref.repository, manifest["config"]["digest"]))
        labels = dict((config.get("config") or {}).get("Labels") or {})
        contents = ImageContents(f"{ref.name}@{digest}", digest, labels)
        layers = [layer["digest"] for layer in manifest.get("layers", [])]
        with tempfile.TemporaryDirectory(prefix="lockstep-read-") as tmp:

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
