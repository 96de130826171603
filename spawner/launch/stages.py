"""Stage pointers, read side: which digest a project's stage points at right now.

A stage pointer is the tag named after the stage in the stage's repository,
``c.Lockstep.stage_registries.get(stage, c.Lockstep.registry) + "/" + project``. Resolving
it asks the registry for the tag's manifest digest (``Docker-Content-Digest``) and reads
the lock hash from the image config label ``org.lockstep.lock-hash``; the result is an
``ImageRef`` pinned by digest, which is all a spawner ever runs.

Guarantees: read-only (HEAD/GET only, through ``spawner.image.registry.RegistryClient``:
Docker-config credentials, a timeout on every request), ``None`` for a stage that has no
pointer (404), and a ``LockstepError`` naming the registry and the fix for anything else.
The write side (promotion) lives in ``spawner.promote``.
"""

from __future__ import annotations

import json

from spawner.errors import LockstepError
from spawner.image.registry import RegistryClient, RegistryError
from spawner.launch.spec import ImageRef
from spawner.settings import Lockstep

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
LOCK_LABEL = "org.lockstep.lock-hash"


class StageError(LockstepError):
    """A stage pointer that could not be read."""


def stage_repository(settings: Lockstep, project: str, stage: str) -> str:
    """``HOST[:PORT]/NAMESPACE/<project>`` holding ``stage``'s pointer tag."""
    registry = settings.stage_registries.get(stage, settings.registry).rstrip("/")
    return f"{registry}/{project}"


def split_repository(repository: str) -> tuple[str, str]:
    """``"127.0.0.1:5000/lockstep/iris"`` -> ``("127.0.0.1:5000", "lockstep/iris")``."""
    host, _, name = repository.partition("/")
    if not name:
        raise StageError(f"repository {repository!r} has no host part; use HOST[:PORT]/NAME")
    return host, name


class _Reader:
    """Tag digest and config labels of one repository, through ``image.registry``."""

    def __init__(self, settings: Lockstep, repository: str):
        self.repository = repository
        host, self.name = split_repository(repository)
        self.client = RegistryClient.for_host(
            host, insecure_registries=tuple(settings.insecure_registries))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.client.close()

    def tag_digest(self, tag: str) -> str | None:
        return self.client.head_manifest(self.name, tag)

    def config_labels(self, digest: str) -> dict[str, str]:
        try:
            data, media_type, _ = self.client.get_manifest(self.name, digest)
        except RegistryError as exc:
            raise StageError(
                f"no image {self.repository}@{digest} ({exc}); list recorded digests with "
                "`lockstep sessions`."
            ) from exc
        manifest = json.loads(data)
        if media_type in INDEX_TYPES or "manifests" in manifest:
            entries = [m for m in manifest.get("manifests") or []
                       if (m.get("platform") or {}).get("architecture") in (None, "amd64")]
            if not entries:
                return {}
            manifest = json.loads(self.client.get_manifest(self.name, entries[0]["digest"])[0])
        config_digest = (manifest.get("config") or {}).get("digest")
        if not config_digest:
            return {}
        config = json.loads(self.client.get_blob(self.name, config_digest))
        return dict((config.get("config") or {}).get("Labels") or {})


def _resolve(reader: _Reader, stage: str) -> ImageRef | None:
    digest = reader.tag_digest(stage)
    if digest is None:
        return None
    labels = reader.config_labels(digest)
    return ImageRef(f"{reader.repository}@{digest}", lock_hash=labels.get(LOCK_LABEL, ""))


def resolve_stage(settings: Lockstep, project: str, stage: str) -> ImageRef | None:
    """The image ``stage`` of ``project`` points at, or ``None`` when it has no pointer."""
    with _Reader(settings, stage_repository(settings, project, stage)) as reader:
        return _resolve(reader, stage)


def available_stages(settings: Lockstep, project: str) -> dict[str, ImageRef]:
    """Every configured stage of ``project`` that has a pointer, in stage order."""
    by_repo: dict[str, list[str]] = {}
    for stage in settings.stages:
        by_repo.setdefault(stage_repository(settings, project, stage), []).append(stage)
    found = {}
    for repository, names in by_repo.items():
        with _Reader(settings, repository) as reader:
            for stage in names:
                ref = _resolve(reader, stage)
                if ref is not None:
                    found[stage] = ref
    return {stage: found[stage] for stage in settings.stages if stage in found}


def lock_hash_of(settings: Lockstep, reference: str) -> str:
    """The lock hash label of an image given as ``REPO@sha256:...`` ('' when unlabelled)."""
    repository, _, digest = reference.partition("@")
    with _Reader(settings, repository) as reader:
        return reader.config_labels(digest).get(LOCK_LABEL, "")
