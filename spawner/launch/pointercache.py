"""Stage pointers as the hub sees them: one read shared for a few seconds, and the last
known digest of every stage for when the registry does not answer.

Guarantees:

* one registry read per repository per ``c.Lockstep.stage_pointer_ttl`` seconds, however
  many spawns and forms ask (asks that arrive while a read runs wait for that read), made
  in a worker thread with ``c.Lockstep.registry_timeout`` and one retry
  (``stages.read_pointers``);
* when the registry does not answer (``RegistryUnavailable``), the stages it holds are
  answered with the last digest this hub read for them (kept in memory, and in
  ``<data_dir>/stage-pointers.json`` unless ``c.Lockstep.remember_stage_pointers`` is
  off), and ``StageImages.notice`` says so, naming the registry; with no last known
  digest a ``StageError`` names the registry and the fix. The failure itself is
  remembered for the same TTL, so a crowd of spawns waits for the registry once;
* a stage the registry answered "no pointer" (404) for is forgotten.

Must not: choose stages or check access (``choice``, ``access``), talk to an engine, or
write anywhere but that one JSON file (atomically replaced).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from traitlets.log import get_logger

from spawner.image.registry import RegistryUnavailable
from spawner.launch import stages
from spawner.launch.spec import ImageRef

FILENAME = "stage-pointers.json"


class StageImages(dict):
    """Stage -> ``ImageRef`` in stage order; ``notice`` is '' when every pointer was read
    just now, else why some are last known ones (for the spawn page and the log)."""

    def __init__(self, images=(), notice: str = ""):
        super().__init__(images)
        self.notice = notice


@dataclass(frozen=True)
class _Read:
    stamp: float
    images: dict[str, ImageRef]
    error: RegistryUnavailable | None = None


class PointerCache:
    """The process's pointer memory for one ``data_dir`` (see :func:`cache_for`)."""

    def __init__(self, path: Path | None):
        self.path = path
        self._reads: dict[tuple, _Read] = {}
        self._running: dict[tuple, asyncio.Task] = {}
        self._known: dict[str, dict[str, dict]] | None = None  # repo -> stage -> record
        self._guard = threading.Lock()

    async def stage_images(self, settings, project: str) -> StageImages:
        """Every configured stage of ``project`` with a pointer (fresh or last known)."""
        found: dict[str, ImageRef] = {}
        notices = []
        for repository, names in stages.stage_groups(settings, project).items():
            try:
                found.update(await self._read(settings, repository, names))
            except RegistryUnavailable as exc:
                known = self.last_known(repository, names)
                if not known:
                    raise stages.StageError(no_pointer_message(repository, names, exc)) from None
                found.update({s: ref for s, (ref, _) in known.items()})
                notices.append(stale_notice(repository, known, exc))
        notice = "; ".join(notices)
        if notice:  # the running Application's log: the hub's own, on either spawner
            get_logger().warning("lockstep: %s", notice)
        return StageImages({s: found[s] for s in settings.stages if s in found}, notice)

    async def _read(self, settings, repository: str, names: list[str]) -> dict[str, ImageRef]:
        key = (repository, tuple(names))
        done = self._reads.get(key)
        if done and time.monotonic() - done.stamp < settings.stage_pointer_ttl:
            if done.error is not None:
                raise done.error
            return done.images
        task = self._running.get(key)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.ensure_future(asyncio.to_thread(self._read_now, settings, key))
            self._running[key] = task
            task.add_done_callback(lambda _t, key=key: self._running.pop(key, None))
        return await asyncio.shield(task)

    def _read_now(self, settings, key: tuple) -> dict[str, ImageRef]:
        repository, names = key
        try:
            images = stages.read_pointers(settings, repository, list(names))
        except RegistryUnavailable as exc:
            self._reads[key] = _Read(time.monotonic(), {}, exc)
            raise
        self._reads[key] = _Read(time.monotonic(), images)
        self._remember(repository, names, images)
        return images

    # ---- last known --------------------------------------------------------------------
    def last_known(self, repository: str, names) -> dict[str, tuple[ImageRef, str]]:
        """Stage -> (image, when it was first read) for ``names`` this hub remembers."""
        with self._guard:
            records = self._load().get(repository, {})
            return {s: (ImageRef(r["reference"], lock_hash=r.get("lock_hash", "")),
                        r.get("read_at", "")) for s, r in records.items() if s in names}

    def _remember(self, repository: str, names, images: dict[str, ImageRef]) -> None:
        with self._guard:
            known = self._load()
            before = dict(known.get(repository, {}))
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            records = {s: r for s, r in before.items() if s not in names}
            for stage, ref in images.items():
                old = before.get(stage)
                same = old and old["reference"] == ref.reference
                records[stage] = old if same else {"reference": ref.reference,
                                                   "lock_hash": ref.lock_hash, "read_at": now}
            if records == before:
                return
            known[repository] = records
            self._save(known)

    def _load(self) -> dict[str, dict[str, dict]]:
        if self._known is None:
            self._known = {}
            if self.path is not None:
                try:
                    data = json.loads(self.path.read_text())
                    self._known = dict(data.get("pointers") or {})
                except (OSError, ValueError, AttributeError):
                    pass
        return self._known

    def _save(self, known: dict) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"version": 1, "pointers": known}, indent=1,
                                      sort_keys=True) + "\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            get_logger().warning("lockstep: could not keep last known stage pointers in %s (%s); "
                        "they stay in memory. Make c.Lockstep.data_dir writable or set "
                        "c.Lockstep.remember_stage_pointers = False", self.path, exc)


_caches: dict[str, PointerCache] = {}


def cache_for(settings) -> PointerCache:
    """The process-wide ``PointerCache`` for ``settings``' data dir (one per hub)."""
    path = settings.data_path(FILENAME) if settings.remember_stage_pointers else None
    key = f"{settings.data_path(FILENAME)}|{path is not None}"
    if key not in _caches:
        _caches[key] = PointerCache(path)
    return _caches[key]


def registry_host(repository: str) -> str:
    return repository.partition("/")[0]


def _reason(exc: RegistryUnavailable) -> str:
    text = str(exc)
    start, end = text.find(" ("), text.find(");")
    return text[start + 2:end] if 0 <= start < end else "no answer"


def stale_notice(repository: str, known: dict[str, tuple[ImageRef, str]],
                 exc: RegistryUnavailable) -> str:
    """'Registry H did not answer (...); using the last known digest of ...'."""
    which = ", ".join(f"{stage} = {ref.digest} (read {when or 'earlier'})"
                      for stage, (ref, when) in known.items())
    return (f"Registry {registry_host(repository)} did not answer ({_reason(exc)}); using "
            f"the last known digest of {repository}: {which}")


def no_pointer_message(repository: str, names, exc: RegistryUnavailable) -> str:
    return (f"Registry {registry_host(repository)} did not answer ({_reason(exc)}) and this "
            f"hub has no last known digest for {repository} (stages {', '.join(names)}). "
            "Start the registry (`lockstep registry start`) or check c.Lockstep.registry "
            "and c.Lockstep.stage_registries, then start the server again.")


def pull_refusal(reference: str, notice: str) -> str:
    """Why an image that is not on the host is not pulled while its registry is down."""
    return (f"{reference} is not on this host and cannot be pulled now. {notice}. Start the "
            "registry (`lockstep registry start`) or check c.Lockstep.registry, then start "
            "the server again.")
