"""The runtime base image, built from ``images/base`` and pushed as ``<registry>/base``.

The base is one layer: the pinned Debian packages of ``packages.lock`` (amd64;
``packages-arm64.lock`` for linux-aarch64, both written by ``lock.sh``; see ``debs``) minus
``exclude.txt``, the files under ``files/`` (``/etc/passwd`` with jovyan 1000:100 ...),
``/home/jovyan`` owned by 1000:100, an empty ``/opt/env``, a CA bundle concatenated from
the Debian ``ca-certificates`` package (never this host's ``/etc/ssl``), and merged-/usr
symlinks. No image is pulled and no Docker daemon is used.

Guarantees: the layer and image are a function of the definition folder and ``epoch``
(cache key = sha256 of them); built once per key under ``<cache>/base/<key>/``; pushed by
digest (linux-64's also as tag ``latest``), and the build returns the digest reference.
Each platform's base is keyed only by its own pin list, so adding a platform never moves
another platform's base digest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from spawner.errors import LockstepError
from spawner.image import debs, oci
from spawner.image.registry import RegistryClient
from spawner.image.tarlayer import BlobCache, Entry, LayerBlob, compression, with_parents
from spawner.labels import BASE_KEY

FORMAT = "lockstep-base-1"
DEFINITION = Path(__file__).resolve().parents[2] / "images" / "base"
CA_DIR = "usr/share/ca-certificates/mozilla"
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
ROOT_LINKS = ("bin", "sbin", "lib", "lib64")
PIN_FILES = {"linux-64": "packages.lock", "linux-aarch64": "packages-arm64.lock"}
"""conda subdir -> the definition's pinned .deb list for that architecture."""
ARCHITECTURES = {"linux-64": "amd64", "linux-aarch64": "arm64"}


def pin_file(definition: Path, platform: str) -> Path:
    """The pinned .deb list of ``platform``; refuses a platform with none."""
    if platform not in PIN_FILES:
        raise LockstepError(
            f"lockstep has no base image for {platform}; images are built for "
            f"{', '.join(PIN_FILES)}"
        )
    path = Path(definition) / PIN_FILES[platform]
    if not path.is_file():
        arch = ARCHITECTURES[platform]
        raise LockstepError(
            f"{path} does not exist, so no {platform} base image can be built; pin the "
            f"Debian packages for {arch} with `sh images/base/lock.sh {arch}`"
        )
    return path


@dataclass(frozen=True)
class BaseImage:
    """A base image: its reference by digest, manifest and what a project build reuses."""

    reference: str
    repository: str  # e.g. lockstep/base
    digest: str
    layers: tuple[oci.Descriptor, ...]
    diff_ids: tuple[str, ...]
    history: tuple[str, ...]
    size: int  # uncompressed bytes


def definition_key(definition: Path, *, epoch: int = 0, platform: str = "linux-64") -> str:
    """sha256 over the definition folder's files (paths, modes, content), FORMAT, epoch and
    the layer compression (``tarlayer.compression``); of the pin lists only ``platform``'s
    counts."""
    head = f"{FORMAT}\0{epoch}\0{compression()}\0" + (
        "" if platform == "linux-64" else f"{platform}\0"
    )
    digest = hashlib.sha256(head.encode())
    others = {name for p, name in PIN_FILES.items() if p != platform}
    for path in sorted(p for p in Path(definition).rglob("*") if p.is_file()):
        rel = path.relative_to(definition).as_posix()
        if rel.endswith((".md", ".sh")) or rel in others:
            continue
        digest.update(f"{rel}\0{path.stat().st_mode & 0o111 != 0}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _fixed_entries(definition: Path) -> list[Entry]:
    entries = [
        Entry("home", "dir", 0o755),
        Entry("home/jovyan", "dir", 0o755, uid=1000, gid=100),
        Entry("opt", "dir", 0o755),
        Entry("opt/env", "dir", 0o755),
        Entry("root", "dir", 0o700),
        Entry("tmp", "dir", 0o1777),
        Entry("var/tmp", "dir", 0o1777),
        Entry("usr/bin/sh", "symlink", 0o777, linkname="bash"),
    ]
    entries += [Entry(d, "symlink", 0o777, linkname=f"usr/{d}") for d in ROOT_LINKS]
    files = Path(definition) / "files"
    for path in sorted(p for p in files.rglob("*") if p.is_file()):
        mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
        entries.append(
            Entry(path.relative_to(files).as_posix(), "file", mode, data=path.read_bytes())
        )
    return entries


def rootfs_entries(definition: Path, deb_cache: Path, platform: str = "linux-64") -> list[Entry]:
    """Every entry of the base layer (downloads pinned .debs into ``deb_cache`` if needed)."""
    definition = Path(definition)
    pins_path = pin_file(definition, platform)
    pins = debs.parse_lock(pins_path.read_text(), source=str(pins_path))
    rules = debs.parse_rules((definition / "exclude.txt").read_text())
    by_path: dict[str, Entry] = {}
    for pin in pins:
        for entry in debs.deb_entries(debs.fetch_deb(pin, deb_cache), pin.name, rules):
            if entry.kind == "dir" and entry.path in by_path:
                continue
            by_path[entry.path] = entry
    for entry in _fixed_entries(definition):
        by_path[entry.path] = entry
    certs = sorted(p for p in by_path if p.startswith(CA_DIR + "/") and p.endswith(".crt"))
    if certs:
        bundle = b"".join(by_path[p].data.rstrip(b"\n") + b"\n" for p in certs)
        by_path[CA_BUNDLE] = Entry(CA_BUNDLE, "file", 0o644, data=bundle)
    for d in ROOT_LINKS:  # the merged-usr targets must exist for the symlinks
        by_path.setdefault(f"usr/{d}", Entry(f"usr/{d}", "dir", 0o755))
    return with_parents(by_path.values())


def build_base_layer(
    definition: Path, cache_root: Path, *, epoch: int = 0, platform: str = "linux-64"
) -> tuple[str, LayerBlob]:
    """(key, layer) for the definition, built once per key under ``cache_root/<key>``."""
    key = definition_key(definition, epoch=epoch, platform=platform)
    blobs = BlobCache(Path(cache_root) / key)
    record = Path(cache_root) / key / "layer.json"
    if record.is_file():
        cached = blobs.get(json.loads(record.read_text())["diff_id"])
        if cached is not None:
            return key, cached
    entries = rootfs_entries(definition, Path(cache_root) / "debs", platform)
    layer = blobs.layer(entries, mtime=epoch)
    record.write_text(json.dumps({"diff_id": layer.diff_id}))
    return key, layer


def base_image_json(
    key: str, layer: LayerBlob, *, epoch: int = 0, platform: str = "linux-64"
) -> tuple[bytes, bytes]:
    """(config bytes, manifest bytes) of the base image (pure)."""
    runtime = oci.RuntimeSpec(
        env={"HOME": oci.HOME, "LANG": "C.UTF-8", "PATH": oci.PATH, "SHELL": "/bin/bash"},
        entrypoint=("/usr/bin/tini", "-g", "--"),
        cmd=("/bin/bash",),
        labels={BASE_KEY: key},
    )
    config = oci.canonical_json(
        oci.image_config(
            runtime=runtime,
            diff_ids=[layer.diff_id],
            created=oci.created_at(epoch),
            history=[f"lockstep base {key[:16]}: pinned Debian bookworm packages"],
            architecture=ARCHITECTURES[platform],
        )
    )
    config_desc = oci.Descriptor(oci.MEDIA_CONFIG, oci.sha256_digest(config), len(config))
    layer_desc = oci.Descriptor(oci.MEDIA_LAYER, layer.digest, layer.size)
    manifest = oci.canonical_json(oci.image_manifest(config=config_desc, layers=[layer_desc]))
    return config, manifest


def ensure_base(
    client: RegistryClient,
    registry: str,
    cache_root: Path,
    *,
    definition: Path = DEFINITION,
    epoch: int = 0,
    progress=lambda msg: None,
    platform: str = "linux-64",
) -> BaseImage:
    """Build (or reuse) ``platform``'s base layer and make sure ``<registry>/base`` holds
    the image (by digest; linux-64's also as ``latest``)."""
    repo = oci.repository_for(registry, "base")
    key, layer = build_base_layer(definition, cache_root, epoch=epoch, platform=platform)
    config, manifest = base_image_json(key, layer, epoch=epoch, platform=platform)
    digest = oci.sha256_digest(manifest)
    if client.head_manifest(repo.repository, digest) is None:
        progress(f"pushing base image {repo.name}@{digest[:19]}")
        client.ensure_blob(repo.repository, layer.digest, Path(layer.path))
        client.ensure_blob(repo.repository, oci.sha256_digest(config), config)
        client.put_manifest(repo.repository, digest, manifest, oci.MEDIA_MANIFEST)
        if platform == "linux-64":
            client.put_manifest(repo.repository, "latest", manifest, oci.MEDIA_MANIFEST)
    return BaseImage(
        reference=str(repo.by_digest(digest)),
        repository=repo.repository,
        digest=digest,
        layers=(oci.Descriptor(oci.MEDIA_LAYER, layer.digest, layer.size),),
        diff_ids=(layer.diff_id,),
        history=tuple(h["created_by"] for h in json.loads(config)["history"]),
        size=layer.uncompressed_size,
    )


def external_base(client: RegistryClient, reference: str) -> BaseImage:
    """A base named by ``c.Lockstep.base_image`` (``REPO@sha256:...``), read from its registry."""
    ref = oci.parse_reference(reference)
    if not ref.digest:
        raise LockstepError(
            f"c.Lockstep.base_image = {reference!r} is not pinned; use REPOSITORY@sha256:<digest>"
        )
    data, media_type, digest = client.get_manifest(ref.repository, ref.digest)
    if media_type not in (oci.MEDIA_MANIFEST, oci.MEDIA_DOCKER_MANIFEST):
        raise LockstepError(f"{reference} is a {media_type}; name a single-platform image manifest")
    manifest = json.loads(data)
    config = json.loads(client.get_blob(ref.repository, manifest["config"]["digest"]))
    layers = tuple(
        oci.Descriptor(
            oci.MEDIA_LAYER if "oci" in media_type else oci.MEDIA_DOCKER_LAYER,
            d["digest"],
            d["size"],
        )
        for d in manifest["layers"]
    )
    history = [
        h.get("created_by", "") for h in config.get("history", []) if not h.get("empty_layer")
    ]
    if len(history) != len(layers):
        history = [f"base layer {i}" for i in range(len(layers))]
    return BaseImage(
        reference=str(ref),
        repository=ref.repository,
        digest=digest,
        layers=layers,
        diff_ids=tuple(config["rootfs"]["diff_ids"]),
        history=tuple(history),
        size=0,
    )
