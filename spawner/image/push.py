"""Pushing a built image: blobs the registry lacks (HEAD, cross-repository mount, upload,
several at once), the manifest last, then the first stage's tag.

A build may start uploading its layers while it still writes others (``EarlyPush``): each
blob is sent as soon as it is complete on disk; ``push_image`` then waits for those
uploads instead of starting them again, and raises the first one's error.

Guarantees: a blob the registry has is never uploaded again; a layer another project's
build already pushed to this registry is mounted, not uploaded; the manifest is put only
after every blob it names is there; the tag is written only when it does not already
name the digest. I/O through ``spawner.image.registry`` only.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from spawner.errors import LockstepError
from spawner.image import oci
from spawner.image.base import BaseImage
from spawner.image.registry import RegistryClient, for_each_blob
from spawner.image.tarlayer import LayerBlob
from spawner.progress import Counter, human_bytes


def sibling_repos(project_dir: Path, repo: oci.Reference, record: str) -> dict[str, str]:
    """Blob digest -> another project's repository, from sibling build records."""
    found = {}
    for path in sorted(Path(project_dir).parent.glob(f"*/{record}")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        other = data.get("reference", "").split("@")[0]
        if other.startswith(repo.host + "/") and other != repo.name:
            for digest in data.get("layer_digests", []):
                found.setdefault(digest, other.split("/", 1)[1])
    return found


class EarlyPush:
    """Layer uploads started while the build writes the other layers (``add``, from any
    thread); ``push_image(..., early=...)`` waits for them. ``close`` waits for all."""

    def __init__(
        self,
        client: RegistryClient,
        repo: oci.Reference,
        siblings: dict[str, str],
        *,
        workers: int = 2,
    ) -> None:
        self.client, self.repository, self.siblings = client, repo.repository, siblings
        self.pool = ThreadPoolExecutor(workers)
        self.started: dict[str, Future] = {}
        self.lock = threading.Lock()

    def add(self, blob: LayerBlob) -> None:
        with self.lock:
            if blob.digest not in self.started:
                mount = (self.siblings[blob.digest],) if blob.digest in self.siblings else ()
                self.started[blob.digest] = self.pool.submit(
                    self.client.ensure_blob, self.repository, blob.digest, Path(blob.path), mount
                )

    def sent(self, digest: str) -> int | None:
        """Bytes the early upload of ``digest`` sent (waiting for it); None: not started."""
        with self.lock:
            future = self.started.get(digest)
        return None if future is None else future.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def push_image(
    client: RegistryClient, repo: oci.Reference, *, base: BaseImage, blobs: list[LayerBlob],
    config: bytes, manifest: bytes, digest: str, siblings: dict[str, str],
    progress: Callable[[str], None], early: EarlyPush | None = None,
) -> int:
    """Push what the registry lacks (waiting for ``early`` uploads), then the manifest;
    bytes uploaded."""
    repository = repo.repository
    jobs = [(d.digest, None, (base.repository,)) for d in base.layers]
    jobs += [
        (b.digest, Path(b.path), (siblings[b.digest],) if b.digest in siblings else ())
        for b in blobs
    ]
    progress(f"pushing to {repo.name}")

    def one(job) -> int:
        blob_digest, path, mount_from = job
        if path is None:
            if client.blob_exists(repository, blob_digest) or client.mount_blob(
                repository, blob_digest, mount_from[0]
            ):
                return 0
            raise LockstepError(
                f"base layer {blob_digest} could not be mounted from {mount_from[0]}"
            )
        sent = early.sent(blob_digest) if early is not None else None
        if sent is not None:
            return sent
        return client.ensure_blob(repository, blob_digest, path, mount_from)

    jobs.append((oci.sha256_digest(config), config, ()))
    pushed = Counter(progress, "pushing", len(jobs), "blobs")

    def counted(job) -> int:
        sent = one(job)
        pushed.add(sent)
        return sent

    uploaded = sum(for_each_blob(counted, jobs))  # PUSH_WORKERS at once; the manifest last
    client.put_manifest(repository, digest, manifest, oci.MEDIA_MANIFEST)
    progress(f"pushed {len(jobs)} blobs: {human_bytes(uploaded)} uploaded, the rest "
             "already in the registry or mounted")
    return uploaded


def tag(client: RegistryClient, repo: oci.Reference, name: str, digest: str,
        manifest: bytes | None = None, media_type: str = oci.MEDIA_MANIFEST) -> None:
    """Point tag ``name`` at ``digest`` (a no-op when it already does)."""
    repository = repo.repository
    if client.head_manifest(repository, name) == digest:
        return
    if manifest is None:
        manifest, media_type, _ = client.get_manifest(repository, digest)
    client.put_manifest(repository, name, manifest, media_type)
