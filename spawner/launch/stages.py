"""Stage pointers, read side: which digest a project's stage points at right now.

A stage pointer is the tag named after the stage in the stage's repository,
``c.Lockstep.stage_registries.get(stage, c.Lockstep.registry) + "/" + project``. Resolving
it asks the registry for the tag's manifest digest (``Docker-Content-Digest``) and reads
the lock hash from the image config label ``org.lockstep.lock-hash``; the result is an
``ImageRef`` pinned by digest, which is all a spawner ever runs.

Guarantees: read-only (HEAD/GET only, through ``spawner.image.registry.RegistryClient``:
``c.Lockstep.registry_auth_file`` then Docker-config credentials, credential helpers
included, re-read when a client is renewed; a timeout on every request), ``None`` for a
stage that has no pointer (404), ``RegistryUnavailable`` when the registry does not answer, and a
``LockstepError`` naming the registry and the fix for anything else. ``read_pointers`` is
the hub's read: ``c.Lockstep.registry_timeout`` on each request, one retry, a client reused
per registry host, and an image's lock hash (immutable: the digest names the content) read
once per process. The write side (promotion) lives in ``spawner.promote``; the hub's memory
of pointers (shared reads, last known digests) in ``spawner.launch.pointercache``.
"""

from __future__ import annotations

import json
import threading
import time

import httpx

from spawner.errors import LockstepError
from spawner.image.registry import RegistryClient, RegistryError, RegistryUnavailable
from spawner.labels import LOCK_HASH
from spawner.launch.spec import ImageRef
from spawner.settings import Lockstep

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
CLIENT_TTL = 600.0  # seconds a hub keeps one registry client (then re-reads credentials)

_clients: dict[tuple, tuple[float, RegistryClient]] = {}
_lock_hashes: dict[str, str] = {}  # "REPO@sha256:..." -> lock hash label
_guard = threading.Lock()


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


def stage_groups(settings: Lockstep, project: str) -> dict[str, list[str]]:
    """Repository -> the stages whose pointer it holds, in stage order."""
    groups: dict[str, list[str]] = {}
    for stage in settings.stages:
        groups.setdefault(stage_repository(settings, project, stage), []).append(stage)
    return groups


def _quick_client(settings: Lockstep, host: str) -> RegistryClient:
    """The hub's shared client for ``host``: short timeouts, one retry (thread-safe)."""
    key = (host, tuple(settings.insecure_registries), settings.registry_timeout,
           settings.registry_auth_file)
    with _guard:
        stamp, client = _clients.get(key, (0.0, None))
        if client is None or time.monotonic() - stamp > CLIENT_TTL:
            client = RegistryClient.for_host(
                host, insecure_registries=key[1], retries=1, auth_file=key[3],
                timeout=httpx.Timeout(settings.registry_timeout))
            _clients[key] = (time.monotonic(), client)  # an old one is left to the GC
        return client


class _Reader:
    """Tag digest and config labels of one repository, through ``image.registry``."""

    def __init__(self, settings: Lockstep, repository: str, quick: bool = False):
        self.repository = repository
        host, self.name = split_repository(repository)
        self.shared = quick
        self.client = _quick_client(settings, host) if quick else RegistryClient.for_host(
            host, insecure_registries=tuple(settings.insecure_registries),
            auth_file=settings.registry_auth_file)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.shared:
            self.client.close()

    def tag_digest(self, tag: str) -> str | None:
        return self.client.head_manifest(self.name, tag)

    def config_labels(self, digest: str) -> dict[str, str]:
        try:
            data, media_type, _ = self.client.get_manifest(self.name, digest)
        except RegistryUnavailable:
            raise
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
    reference = f"{reader.repository}@{digest}"
    lock_hash = _lock_hashes.get(reference)
    if lock_hash is None:
        lock_hash = reader.config_labels(digest).get(LOCK_HASH, "")
        with _guard:
            if len(_lock_hashes) > 4096:
                _lock_hashes.clear()
            _lock_hashes[reference] = lock_hash
    return ImageRef(reference, lock_hash=lock_hash)


def read_pointers(settings: Lockstep, repository: str, stages: list[str]) -> dict[str, ImageRef]:
    """The hub's read of ``stages``' pointers in ``repository`` (short timeouts, one retry):
    stage -> image for those that have one; ``RegistryUnavailable`` if it did not answer."""
    found = {}
    with _Reader(settings, repository, quick=True) as reader:
        for stage in stages:
            ref = _resolve(reader, stage)
            if ref is not None:
                found[stage] = ref
    return found


def resolve_stage(settings: Lockstep, project: str, stage: str) -> ImageRef | None:
    """The image ``stage`` of ``project`` points at, or ``None`` when it has no pointer."""
    with _Reader(settings, stage_repository(settings, project, stage)) as reader:
        return _resolve(reader, stage)


def available_stages(settings: Lockstep, project: str) -> dict[str, ImageRef]:
    """Every configured stage of ``project`` that has a pointer, in stage order."""
    found = {}
    for repository, names in stage_groups(settings, project).items():
        with _Reader(settings, repository) as reader:
            for stage in names:
                ref = _resolve(reader, stage)
                if ref is not None:
                    found[stage] = ref
    return {stage: found[stage] for stage in settings.stages if stage in found}


def lock_hash_of(settings: Lockstep, reference: str, quick: bool = False) -> str:
    """The lock hash label of an image given as ``REPO@sha256:...`` ('' when unlabelled);
    ``quick``: the hub's read (short timeouts, one retry, remembered per process)."""
    repository, _, digest = reference.partition("@")
    if quick and reference in _lock_hashes:
        return _lock_hashes[reference]
    with _Reader(settings, repository, quick=quick) as reader:
        lock_hash = reader.config_labels(digest).get(LOCK_HASH, "")
    if quick:
        _lock_hashes[reference] = lock_hash
    return lock_hash
