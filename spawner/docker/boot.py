"""The boot half of ``LockstepDockerSpawner``: progress events and waiting for the server.

A mixin, so the spawner module stays glue. ``_emit`` records a progress line (for the spawn
page and the log), ``progress`` streams them to JupyterHub, ``_wait_ready`` polls the new
server until it answers, exits or its ``ready_timeout`` passes, and frees the start slot
(``_Slot``) after ``start_slot_grace``. It must not create or remove engine objects.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from spawner.docker import engine as dockerops

POLL_FIRST, POLL_MOST = 0.05, 0.25  # seconds between readiness checks: backs off to this


async def port_open(ip: str, port: int) -> bool:
    """True when a TCP connection to ``ip:port`` is accepted within a second."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


class _Slot:
    """A held start slot; ``release`` frees it once, however often it is called."""

    def __init__(self, gate: asyncio.Semaphore | None):
        self._gate = gate

    def release(self) -> None:
        if self._gate is not None:
            self._gate, gate = None, self._gate
            gate.release()


class Booting:
    """Progress and readiness of a starting server (mixed into the spawner)."""

    _news: asyncio.Event | None = None  # set by _emit: progress readers wake on news only

    def _emit(self, message: str, progress: int | None = None) -> None:
        event: dict = {"message": message}
        if progress is not None:
            event["progress"] = progress
        self._events.append(event)
        if self._news is not None:
            self._news.set()
        elapsed = time.monotonic() - self._began
        self.log.info("lockstep %s: +%.2fs %s", self._log_name, elapsed, message)

    async def progress(self):
        seen = 0
        while True:
            while seen < len(self._events):
                yield self._events[seen]
                seen += 1
            if self._start_done:
                return
            if self._news is None:
                self._news = asyncio.Event()
            self._news.clear()
            try:  # woken by _emit; the timeout only notices the end of start()
                await asyncio.wait_for(self._news.wait(), 1.0)
            except TimeoutError:
                pass

    async def _wait_ready(self, ip: str, slot: _Slot | None = None) -> bool | None:
        """Poll the server until it answers (True), exits (refused) or ``ready_timeout``
        passes (False; None when that is 0). ``slot`` is freed after ``start_slot_grace``."""
        if self.ready_timeout <= 0:
            return None
        url = f"http://{ip}:{self.port}{self.server.base_url if self.server else '/'}api"
        began = time.monotonic()
        deadline, polled, delay = began + self.ready_timeout, began, POLL_FIRST
        gap = 1.0  # seconds until the next look at the container (did it exit?), doubling
        # plain HTTP to the container: no TLS context to build (costly on the Hub's loop)
        async with httpx.AsyncClient(timeout=1.0, verify=False, trust_env=False) as client:
            while time.monotonic() < deadline:
                try:  # a cheap connect first: no HTTP request until the port is open
                    if await port_open(ip, self.port) and \
                            (await client.get(url)).status_code < 500:
                        return True
                except httpx.HTTPError:
                    pass
                if slot is not None and time.monotonic() - began > self.start_slot_grace:
                    slot.release()
                if time.monotonic() - polled > gap:
                    polled, gap = time.monotonic(), min(gap * 2, 8.0)
                    if await self.poll() is not None:
                        logs = await asyncio.to_thread(dockerops.container_logs, self.client,
                                                       self.object_id)
                        self._refuse(f"the server exited while starting:\n{logs}", 500,
                                     "exited")
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, POLL_MOST)
        return False
