"""Where the service reads everything it shows: projects, stage pointers, images, the
promotion trail and the session log, with the caching that keeps a page fast.

* projects: ``spawner.launch.catalog.load_catalog`` (a bad ``project.yaml`` is left out),
  re-read at most every ``CATALOG_TTL`` seconds;
* stage pointers: ``spawner.launch.pointercache.PointerCache`` (one registry read per
  repository per ``c.Lockstep.stage_pointer_ttl``, the last known digest when the registry
  is down), in memory only: the hub owns ``stage-pointers.json``;
* images: ``spawner.hubservice.images.ImageReader`` (once per digest);
* the trail (``<data_dir>/audit.jsonl``): parsed again only when the file's size or
  modification time changed; the session log (``sessions.jsonl``): read incrementally
  (``spawner.sessions.SessionLog``: only appended lines are parsed; all again when the file
  shrank or was replaced). ``warm()`` reads both once, before the service takes requests.

Guarantees: read-only; blocking reads run in worker threads (``asyncio.to_thread``). It
must not decide what a user may see (``visibility``) nor shape answers (``views``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from spawner.hubservice.images import ImageInfo, ImageReader
from spawner.launch.catalog import Catalog, load_catalog
from spawner.launch.pointercache import PointerCache
from spawner.lock.package import LockedPackage
from spawner.promote.trail import AuditRecord, AuditTrail
from spawner.sessions import FILENAME as SESSIONS_FILE
from spawner.sessions import Session, SessionLog

CATALOG_TTL = 2.0
TRAIL_FILE = "audit.jsonl"


class FileMemo:
    """The parse of one file, redone only when its (size, mtime) changed. Thread-safe."""

    def __init__(self, path: Path, parse: Callable[[Path], object]):
        self.path, self.parse = Path(path), parse
        self._stamp: tuple | None = None
        self._value: object = None
        self._guard = threading.Lock()

    def get(self):
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        except FileNotFoundError:
            stamp = None
        with self._guard:
            if self._stamp != stamp or self._value is None:
                self._value, self._stamp = self.parse(self.path), stamp
            return self._value


class Source:
    """The service's reads for one site (``spawner.settings.Lockstep``)."""

    def __init__(self, settings):
        self.settings = settings
        self.pointers = PointerCache(None)
        self.images = ImageReader(settings)
        self._catalog: tuple[float, Catalog] | None = None
        self._trail = FileMemo(settings.data_path(TRAIL_FILE), lambda p: AuditTrail(p).read())
        self._sessions = SessionLog(settings.data_path(SESSIONS_FILE))
        self.hub_servers = None  # hubservers.HubServers: the hub's running servers (app.serve)

    @property
    def stages(self) -> list[str]:
        return list(self.settings.stages)

    def catalog(self) -> Catalog:
        now = time.monotonic()
        if self._catalog is None or now - self._catalog[0] > CATALOG_TTL:
            self._catalog = (now, load_catalog(self.settings.environments_dir))
        return self._catalog[1]

    async def stage_images(self, project: str) -> dict[str, ImageInfo | None]:
        """Stage -> the image its pointer holds now (``ImageInfo``), in stage order; a stage
        without a pointer is left out."""
        refs = await self.pointers.stage_images(self.settings, project)
        found = {}
        for stage in self.stages:
            if stage in refs:
                found[stage] = await asyncio.to_thread(self.images.info, refs[stage].reference)
        return found

    async def stage_digests(self, project: str) -> dict[str, str]:
        """Stage -> digest, without reading image configs (for the sessions overview)."""
        refs = await self.pointers.stage_images(self.settings, project)
        return {stage: refs[stage].digest for stage in self.stages if stage in refs}

    async def packages(self, reference: str) -> tuple[LockedPackage, ...]:
        return await asyncio.to_thread(self.images.packages, reference)

    async def locate(self, project: str, digest: str) -> str:
        return await asyncio.to_thread(self.images.locate, project, digest)

    def trail(self, project: str) -> list[AuditRecord]:
        return [r for r in self._trail.get() if r.project == project]

    def sessions(self) -> list[Session]:
        return self._sessions.sessions()

    def forget_pointers(self) -> None:
        """Drop every remembered stage pointer (after this service moved one)."""
        self.pointers = PointerCache(None)

    def warm(self) -> None:
        """Read the trail and the session log once (blocking), so that the first page a
        user asks for does not pay for parsing them."""
        self._trail.get()
        self._sessions.sessions()
