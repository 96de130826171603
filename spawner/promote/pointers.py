"""Stage pointers, write side: move a stage tag to a digest, compare-and-swap.

A stage pointer is the tag named after the stage in the stage's repository
(``spawner.launch.stages.stage_repository``). Moving it never rebuilds anything:

* same repository: GET the manifest by digest, PUT the same bytes under the tag (same
  bytes, same digest);
* another repository on the same registry: blobs are mounted (no bytes move), then the
  manifest is PUT by digest and under the tag;
* another registry: missing blobs are streamed (HEAD first, skipped when present), the
  manifest is PUT by digest, then under the tag. The digest is preserved.
* an OCI image index (a multi-platform build): each child manifest's blobs, then the child
  manifests by digest, then the index by digest and under the tag.

Guarantees: ``StageLock`` serialises read-check-write per (project, stage) across threads
and processes on this host (``flock`` on ``<data_dir>/locks/<project>.<stage>.lock``);
``move_pointer`` refuses (``PointerConflict``) when the tag no longer holds what the caller
read before its gates ran, and re-reads the tag after writing (``PointerError`` when it
does not hold the digest). Nothing is changed before every check passed: a failure
leaves the tag as it was (copied blobs may stay; they are content-addressed and harmless).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from spawner.errors import LockstepError
from spawner.image.imagecopy import copy_contents
from spawner.image.registry import RegistryClient, RegistryError


class PointerError(LockstepError):
    """A stage tag that could not be moved as asked."""


class PointerConflict(PointerError):
    """The tag moved between the caller's read and its write."""


@dataclass(frozen=True)
class Endpoint:
    """A stage's repository: a client for its registry and the repository name on it."""

    client: RegistryClient
    repository: str  # "lockstep/forecast"

    @property
    def name(self) -> str:
        return f"{self.client.host}/{self.repository}"


@dataclass(frozen=True)
class Move:
    """What a pointer move did."""

    digest: str
    previous: str | None
    bytes_moved: int
    seconds: float
    copied: bool  # blobs had to be made present in another repository


_thread_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


class StageLock:
    """Exclusive lock on one project's stage, across threads and processes of this host."""

    def __init__(self, lock_dir: Path, project: str, stage: str, *, timeout: float = 600):
        self.path = Path(lock_dir) / f"{project}.{stage}.lock"
        self.timeout = timeout
        with _guard:
            self._thread_lock = _thread_locks.setdefault(str(self.path), threading.Lock())
        self._fd: int | None = None
        self._held = False

    def __enter__(self) -> StageLock:
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise PointerError(f"timed out after {self.timeout:.0f} s waiting for {self.path}")
        self._held = True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return self
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise PointerError(
                            f"another promotion holds {self.path} for over {self.timeout:.0f} s; "
                            "wait for it, or remove the file if no lockstep process is running"
                        ) from None
                    time.sleep(0.01)
        except BaseException:
            self._release()
            raise

    def __exit__(self, *exc) -> None:
        self._release()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None
        if self._held:
            self._held = False
            self._thread_lock.release()


def read_pointer(endpoint: Endpoint, stage: str) -> str | None:
    """The digest the stage tag holds, or None when there is no such tag."""
    return endpoint.client.head_manifest(endpoint.repository, stage)


def _read_back(endpoint: Endpoint, stage: str, *, tries: int = 3) -> str | None:
    """The stage tag after a write, retried: a write the registry acknowledged is not
    undone by one failed read."""
    for attempt in range(tries):
        try:
            return read_pointer(endpoint, stage)
        except RegistryError:
            if attempt == tries - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    return None


def copy_blobs(source: Endpoint, target: Endpoint, data: bytes, *, workers: int = 4) -> int:
    """Make what the manifest ``data`` names present in ``target``; returns bytes uploaded.

    Per blob, in parallel: HEAD (present: nothing to do), cross-repository mount on the
    same registry, else download and upload (streamed through a temporary file). An OCI
    image index (a multi-platform build) has each child manifest's blobs copied, then the
    child manifest PUT by digest (``imagecopy.copy_contents``).
    """
    with tempfile.TemporaryDirectory(prefix="lockstep-promote-") as workdir:
        return copy_contents(source.client, source.repository, target.client,
                             target.repository, data, workdir=Path(workdir), workers=workers)


def _same_repo(a: Endpoint, b: Endpoint) -> bool:
    return a.client.host == b.client.host and a.repository == b.repository


def move_pointer(
    *,
    source: Endpoint,
    target: Endpoint,
    stage: str,
    digest: str,
    expected: str | None,
) -> Move:
    """Point ``target``'s ``stage`` tag at ``digest`` (from ``source``) if it holds ``expected``.

    Call it inside ``StageLock`` for (project, stage): the check and the write are then
    atomic with respect to every other lockstep promotion on this host.
    """
    started = time.monotonic()
    current = read_pointer(target, stage)
    if current != expected:
        raise PointerConflict(
            f"{target.name}:{stage} moved from {expected or 'nothing'} to {current or 'nothing'} "
            "while this promotion was checked; nothing was changed: run it again"
        )
    data, media_type, found = source.client.get_manifest(source.repository, digest)
    if found != digest:
        raise PointerError(f"{source.name}@{digest} returned a manifest of digest {found}")
    moved, copied = 0, False
    if not _same_repo(source, target):
        moved = copy_blobs(source, target, data) + len(data)
        target.client.put_manifest(target.repository, digest, data, media_type)
        copied = True
    try:
        target.client.put_manifest(target.repository, stage, data, media_type)
    except RegistryError:
        # the registry may have applied the write before its answer was lost (a reset
        # connection under load): ask it, so the trail never says "failed" for a move
        if _read_back(target, stage) != digest:
            raise
    moved += len(data)
    after = _read_back(target, stage)
    if after != digest:
        raise PointerError(
            f"{target.name}:{stage} holds {after or 'nothing'} after it was set to {digest}; "
            "another writer outside lockstep is moving this tag"
        )
    return Move(digest, current, moved, round(time.monotonic() - started, 4), copied)
