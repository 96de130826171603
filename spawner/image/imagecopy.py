"""Copy what a manifest names from one repository to another, keeping every digest.

Guarantees: ``copy_contents`` makes an image manifest's config and layers present in the
destination (HEAD first, a cross-repository mount on the same registry, else a streamed
download and upload through ``workdir``), and for an OCI image index (a multi-platform
build) every child manifest's blobs and then the child manifest itself, PUT by digest with
its own bytes; so the caller may then PUT the top manifest, by digest or tag, and every
reference in it resolves. It never PUTs the top manifest and never rewrites a manifest
(a rewritten one would have another digest). It must not import docker-py.
"""

from __future__ import annotations

import json
from pathlib import Path

from spawner.image.registry import PUSH_WORKERS, RegistryClient, RegistryError, for_each_blob


def referenced_blobs(manifest: dict) -> list[str]:
    """An image manifest's config and layer digests, once each, in manifest order."""
    return list(
        dict.fromkeys(d["digest"] for d in [manifest["config"], *manifest.get("layers", [])])
    )


def copy_contents(
    src: RegistryClient,
    src_repo: str,
    dst: RegistryClient,
    dst_repo: str,
    data: bytes,
    *,
    workdir: Path,
    workers: int = PUSH_WORKERS,
) -> int:
    """Make everything the manifest ``data`` names present in ``dst_repo``; bytes uploaded.

    An image manifest: its config and layers (HEAD, then a mount on the same registry, else
    download and upload). An image index (a multi-platform build): each child manifest's
    blobs, then the child manifest PUT by its digest (same bytes, so same digest), so
    that the caller may PUT the index itself. The top manifest is never PUT here.
    """
    manifest = json.loads(data)
    if "manifests" in manifest:
        uploaded = 0
        for child in manifest["manifests"]:
            child_data, child_type, found = src.get_manifest(src_repo, child["digest"])
            if found != child["digest"]:
                raise RegistryError(
                    f"{src.host}/{src_repo}@{child['digest']} (an index entry) "
                    "returned a manifest of other digest"
                )
            if dst.head_manifest(dst_repo, found) != found:
                uploaded += copy_contents(
                    src, src_repo, dst, dst_repo, child_data, workdir=workdir, workers=workers
                )
                dst.put_manifest(dst_repo, found, child_data, child.get("mediaType") or child_type)
        return uploaded

    def copy_blob(blob: str) -> int:
        if dst.blob_exists(dst_repo, blob):
            return 0
        if src.host == dst.host and dst.mount_blob(dst_repo, blob, src_repo):
            return 0
        tmp = Path(workdir) / blob.replace(":", "-")
        src.download_blob(src_repo, blob, tmp)
        try:
            return dst.push_blob(dst_repo, blob, tmp)
        finally:
            tmp.unlink(missing_ok=True)

    return sum(for_each_blob(copy_blob, referenced_blobs(manifest), workers))
