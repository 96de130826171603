"""What a booting server costs the Hub's event loop: progress readers wake on news only, and
the readiness wait sends no HTTP request before the server's port is open and looks at the
container less and less often. A real HTTP server on loopback; no engine needed."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from traitlets.config import Config

from spawner.docker.spawner import LockstepDockerSpawner
from tests.unit.hubfakes import User


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawner() -> LockstepDockerSpawner:
    return LockstepDockerSpawner(user=User("u"), config=Config())


async def test_progress_wakes_on_each_event_and_ends_with_start():
    booting = spawner()
    booting._events, booting._start_done, booting._began = [], False, time.monotonic()
    seen: list[tuple[float, str]] = []

    async def read():
        async for event in booting.progress():
            seen.append((time.monotonic(), event["message"]))

    reader = asyncio.ensure_future(read())
    for n in range(3):
        await asyncio.sleep(0.13)
        booting._emit(f"event {n}", 10 * n)
        await asyncio.sleep(0.02)  # delivered now, not at the next tick of a poll loop
        assert [m for _, m in seen] == [f"event {k}" for k in range(n + 1)]
    booting._emit("last", 90)
    booting._start_done = True
    await asyncio.wait_for(reader, 2)
    assert seen[-1][1] == "last"


class Counting(BaseHTTPRequestHandler):
    hits = 0

    def log_message(self, *args):
        pass

    def do_GET(self):
        Counting.hits += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


async def test_ready_wait_backs_off_and_looks_at_the_container_rarely():
    booting = spawner()
    booting.port = free_port()
    looks = []

    async def poll():
        looks.append(time.monotonic())
        return None

    booting.poll = poll
    Counting.hits = 0
    servers = []

    def serve_later():
        time.sleep(4.0)
        server = ThreadingHTTPServer(("127.0.0.1", booting.port), Counting)
        servers.append(server)
        server.serve_forever(0.05)

    threading.Thread(target=serve_later, daemon=True).start()
    began = time.monotonic()
    try:
        assert await booting._wait_ready("127.0.0.1") is True
    finally:
        while not servers:
            await asyncio.sleep(0.05)
        servers[0].shutdown()
    assert 4.0 <= time.monotonic() - began < 4.7  # backs off to 0.25 s at most
    assert Counting.hits == 1  # the first HTTP request is the one that answers
    assert len(looks) == 2  # after 1 s, then 2 s later (then 4 s): not every second
