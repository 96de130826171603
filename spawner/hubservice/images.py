"""What the service reads from the registry about one image: build time, size, lock hash
and its packages, each read once per digest (a digest names immutable content).

``summarise`` and ``meta_layer`` are pure (a manifest and config in, plain data out);
``ImageReader`` does the reads through ``spawner.image.registry.RegistryClient`` (Docker
config credentials, timeouts, HTTP only for ``c.Lockstep.insecure_registries``). The
packages come from the image's ``/opt/env/conda-meta`` records: a lockstep build writes
them, normalised, into one last layer whose history says ``conda-meta (normalised)``, so
only that layer is fetched; an image without that history is read whole
(``spawner.image.reader.read_image``, file hashes off). Images built by lockstep hold conda
packages only (pip entries are refused at install), so an image's pip list is empty.

Guarantees: read-only (GET/HEAD, nothing pushed, tagged or written to disk); blocking, so
async callers use ``asyncio.to_thread``; a missing digest raises ``ImageMissing`` naming
the repository and the digest. It must not decide who may see an image.
"""

from __future__ import annotations

import io
import json
import threading
from dataclasses import dataclass

from spawner.errors import LockstepError
from spawner.image.reader import read_image, read_layer
from spawner.image.registry import RegistryClient, RegistryError, RegistryUnavailable
from spawner.labels import JUPYTERLAB, LOCK_HASH
from spawner.launch.stages import INDEX_TYPES, split_repository, stage_groups
from spawner.lock.package import LockedPackage

META_HISTORY = "conda-meta (normalised)"
CACHE_LIMIT = 512


class ImageMissing(LockstepError):
    """An image digest the project's repositories do not hold (404)."""

    status = 404


@dataclass(frozen=True)
class ImageInfo:
    """One image as the page shows it; ``size`` counts compressed layers and config."""

    reference: str
    digest: str
    lock_hash: str
    created: str
    size: int
    layers: int
    jupyterlab: str = ""
    """The image's ``labels.JUPYTERLAB`` (the JupyterLab version it installs; '' for none)."""

    def to_json(self) -> dict:
        return {"reference": self.reference, "digest": self.digest, "lock_hash": self.lock_hash,
                "created": self.created, "size": self.size, "layers": self.layers}


def summarise(reference: str, manifest: dict, config: dict) -> ImageInfo:
    """An ``ImageInfo`` from a manifest and its config. Pure."""
    layers = manifest.get("layers") or []
    size = sum(int(d.get("size") or 0) for d in layers)
    size += int((manifest.get("config") or {}).get("size") or 0)
    labels = (config.get("config") or {}).get("Labels") or {}
    return ImageInfo(reference=reference, digest=reference.partition("@")[2],
                     lock_hash=str(labels.get(LOCK_HASH, "")), created=str(config.get("created")
                                                                          or ""),
                     size=size, layers=len(layers),
                     jupyterlab=str(labels.get(JUPYTERLAB) or "").strip())


def meta_layer(manifest: dict, config: dict) -> str | None:
    """The digest of the layer holding the normalised conda-meta, when the history says. Pure."""
    history = [h for h in config.get("history") or [] if not h.get("empty_layer")]
    layers = manifest.get("layers") or []
    if len(history) != len(layers):
        return None
    for entry, layer in zip(reversed(history), reversed(layers), strict=True):
        if entry.get("created_by") == META_HISTORY:
            return layer.get("digest")
    return None


def packages_of_records(records) -> tuple[LockedPackage, ...]:
    """Conda packages from conda-meta records, sorted by name. Pure."""
    found = (LockedPackage.from_conda_meta(r) for r in records if not r.get("_invalid"))
    return tuple(sorted(found, key=lambda p: p.name))


class ImageReader:
    """Blocking, cached reads of image facts for one site's settings."""

    def __init__(self, settings):
        self.settings = settings
        self._infos: dict[str, ImageInfo] = {}
        self._packages: dict[str, tuple[LockedPackage, ...]] = {}
        self._guard = threading.Lock()

    def _client(self, repository: str) -> tuple[RegistryClient, str]:
        host, name = split_repository(repository)
        client = RegistryClient.for_host(
            host, insecure_registries=tuple(self.settings.insecure_registries), retries=1)
        return client, name

    def _manifest(self, client: RegistryClient, name: str, digest: str) -> tuple[dict, dict]:
        try:
            data, media_type, _ = client.get_manifest(name, digest)
        except RegistryUnavailable:
            raise
        except RegistryError as exc:
            raise ImageMissing(f"no image {client.host}/{name}@{digest} ({exc})") from None
        manifest = json.loads(data)
        if media_type in INDEX_TYPES or "manifests" in manifest:
            entries = [m for m in manifest.get("manifests") or []
                       if (m.get("platform") or {}).get("architecture") in (None, "amd64")]
            if not entries:
                raise ImageMissing(f"{client.host}/{name}@{digest} has no linux/amd64 image")
            manifest = json.loads(client.get_manifest(name, entries[0]["digest"])[0])
        config = json.loads(client.get_blob(name, manifest["config"]["digest"]))
        return manifest, config

    def info(self, reference: str) -> ImageInfo:
        """Build time, size and lock hash of ``REPO@sha256:...``."""
        if reference in self._infos:
            return self._infos[reference]
        repository, _, digest = reference.partition("@")
        client, name = self._client(repository)
        with client:
            manifest, config = self._manifest(client, name, digest)
        info = summarise(reference, manifest, config)
        self._remember(self._infos, reference, info)
        return info

    def packages(self, reference: str) -> tuple[LockedPackage, ...]:
        """The conda packages installed in ``REPO@sha256:...`` (its conda-meta records)."""
        if reference in self._packages:
            return self._packages[reference]
        repository, _, digest = reference.partition("@")
        client, name = self._client(repository)
        with client:
            manifest, config = self._manifest(client, name, digest)
            layer = meta_layer(manifest, config)
            if layer is not None:
                delta = read_layer(io.BytesIO(client.get_blob(name, layer)), hash_files=False)
                records = [delta.meta[k] for k in sorted(delta.meta)]
        if layer is None:
            records = read_image(self.settings, reference, hash_files=False).records
        found = packages_of_records(records)
        self._remember(self._packages, reference, found)
        return found

    def locate(self, project: str, digest: str) -> str:
        """``REPO@digest`` in the first of ``project``'s stage repositories holding it."""
        for repository in stage_groups(self.settings, project):
            client, name = self._client(repository)
            with client:
                if client.head_manifest(name, digest) is not None:
                    return f"{repository}@{digest}"
        raise ImageMissing(f"project {project!r} has no image {digest}; pick a stage or a "
                           "digest listed under its stages or sessions")

    def _remember(self, table: dict, key: str, value) -> None:
        with self._guard:
            if len(table) >= CACHE_LIMIT:
                table.clear()
            table[key] = value
