"""The boot half of ``LockstepDockerSpawner``: progress events and waiting for the server.

A mixin, so the spawner module stays glue. ``_emit`` records a progress line (for the spawn
page and the log), ``progress`` streams them to JupyterHub, ``_wait_ready`` polls the new
server until it answers, exits or its ``ready_timeout`` passes, and frees the start slot
(``_Slot``) after ``start_slot_grace``. It must not create or remove engine objects.

The wait runs on the Hub's event loop, beside every other user's requests, so each check is
as cheap as it can be: one non-blocking socket (``answers``) that is refused while nothing
listens, and that carries the one plain HTTP/1.0 ``GET`` once the port accepts (no HTTP
client, no TLS context, no second connection). A refusal comes from the container's own
network namespace, which exists only while the container runs, so the engine is asked
whether the container exited (an ``inspect``) soon only when its address stays silent,
and otherwise every ``LOOK_ALIVE`` seconds.
"""

from __future__ import annotations

import asyncio
import socket
import time

from spawner.docker import engine as dockerops

POLL_FIRST, POLL_MOST = 0.05, 0.25  # seconds between readiness checks: backs off to this
LOOK_ALIVE = 8.0  # seconds between looks at a container whose address refuses (it runs)


async def port_open(ip: str, port: int) -> bool:
    """True when a TCP connection to ``ip:port`` is accepted within a second."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def answers(ip: str, port: int, path: str, timeout: float = 1.0) -> bool | None:
    """``GET path`` (HTTP/1.0) at ``ip:port``: True when the status is below 500 within
    ``timeout``; False when something there refused the connection or answered otherwise
    (the container's network namespace is up: it runs); None when nothing answered at all
    (no route, no refusal in time: the container may have exited). One non-blocking
    socket, nothing sent before the port accepts."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    request = f"GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\n\r\n".encode()
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        head, connected = b"", False
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, (ip, port))
                connected = True
                await loop.sock_sendall(sock, request)
                while b"\r\n" not in head and len(head) < 256:
                    chunk = await loop.sock_recv(sock, 256)
                    if not chunk:
                        break
                    head += chunk
        except ConnectionRefusedError:
            return False
        except (OSError, TimeoutError):
            return False if connected else None
    status = head.split(b"\r\n", 1)[0].split()
    return len(status) >= 2 and status[0].startswith(b"HTTP/") and status[1].isdigit() \
        and int(status[1]) < 500


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

    def _start_ended(self) -> None:
        """start() is over (done or failed): progress readers finish."""
        self._start_done = True
        if self._news is not None:
            self._news.set()

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
            # woken by _emit and by _start_ended only: a reader waiting for a start slot
            # costs the Hub's loop nothing until there is news
            await self._news.wait()

    async def _wait_ready(self, ip: str, slot: _Slot | None = None) -> bool | None:
        """Poll the server until it answers (True), exits (refused) or ``ready_timeout``
        passes (False; None when that is 0). ``slot`` is freed after ``start_slot_grace``."""
        if self.ready_timeout <= 0:
            return None
        path = f"{self.server.base_url if self.server else '/'}api"
        began = time.monotonic()
        deadline, polled, delay = began + self.ready_timeout, began, POLL_FIRST
        gap = 1.0  # seconds until the next look at the container (did it exit?), doubling
        while time.monotonic() < deadline:
            answer = await answers(ip, self.port, path)
            if answer:
                return True
            if slot is not None and time.monotonic() - began > self.start_slot_grace:
                slot.release()
            # a refusal comes from the container's own network namespace: it runs, so the
            # engine is asked only every LOOK_ALIVE seconds; silence is looked at sooner
            if time.monotonic() - polled > (gap if answer is None else LOOK_ALIVE):
                polled, gap = time.monotonic(), min(gap * 2, 8.0)
                if await self.poll() is not None:
                    logs = await asyncio.to_thread(dockerops.container_logs, self.client,
                                                   self.object_id)
                    self._refuse(f"the server exited while starting:\n"
                                 f"{logs or '(its container is gone: no logs to show)'}", 500,
                                 "exited")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, POLL_MOST)
        return False
