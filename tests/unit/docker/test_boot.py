"""What a booting server costs the Hub's event loop: progress readers wake on news only, and
the readiness wait sends no HTTP request before the server's port is open and looks at the
container less and less often. A real HTTP server on loopback; no engine needed."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from traitlets.config import Config

from spawner.docker import boot
from spawner.docker.spawner import LockstepDockerSpawner
from spawner.hubcompat import SpawnException
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
    booting._start_ended()
    await asyncio.wait_for(reader, 2)
    assert seen[-1][1] == "last"


async def test_a_waiting_reader_sleeps_until_news_and_ends_with_start():
    booting = spawner()
    booting._events, booting._start_done, booting._began = [], False, time.monotonic()
    waits = []
    event = asyncio.Event()
    real_wait = event.wait

    async def counted_wait():
        waits.append(time.monotonic())
        return await real_wait()

    event.wait = counted_wait
    booting._news = event
    seen = []

    async def read():
        async for item in booting.progress():
            seen.append(item["message"])

    reader = asyncio.ensure_future(read())
    await asyncio.sleep(2.5)  # a spawn queued for a start slot: no news
    assert len(waits) == 1 and not reader.done()  # one wait, no tick every second
    ended = time.monotonic()
    booting._start_ended()
    await asyncio.wait_for(reader, 1)
    assert time.monotonic() - ended < 0.2 and seen == []


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
    assert looks == []  # refused meanwhile: the address is alive, the engine is not asked


async def test_a_silent_address_gets_the_container_looked_at_backing_off(monkeypatch):
    booting = spawner()
    looks = []

    async def poll():
        looks.append(time.monotonic())
        return None

    async def silent(ip, port, path, timeout=1.0):  # no route, no refusal: exited?
        await asyncio.sleep(0.01)
        return None if time.monotonic() - began < 3.6 else True

    booting.poll = poll
    monkeypatch.setattr(boot, "answers", silent)
    began = time.monotonic()
    assert await booting._wait_ready("127.0.0.1") is True
    # after 1 s, then 2 s later (lower bounds: a loaded machine only makes sleeps longer)
    assert len(looks) == 2
    assert looks[0] - began >= 0.95 and looks[1] - looks[0] >= 1.95


async def test_a_container_that_exits_while_silent_is_refused_with_its_logs(monkeypatch):
    booting = spawner()

    async def exited():
        return 1

    async def silent(ip, port, path, timeout=1.0):
        await asyncio.sleep(0.01)
        return None

    booting.poll = exited
    monkeypatch.setattr(boot, "answers", silent)
    monkeypatch.setattr(boot.dockerops, "container_logs", lambda *a: "boom: bad config")
    began = time.monotonic()
    with pytest.raises(SpawnException) as err:
        await booting._wait_ready("127.0.0.1")
    assert "exited while starting" in str(err.value) and "boom: bad config" in str(err.value)
    assert time.monotonic() - began < 1.6


def test_answers_reads_the_status_on_one_connection_and_tells_refused_from_silent():
    async def check():
        port = free_port()
        assert await boot.answers("127.0.0.1", port, "/api") is False  # refused: alive
        server = ThreadingHTTPServer(("127.0.0.1", port), Counting)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        Counting.hits = 0
        try:
            assert await boot.answers("127.0.0.1", port, "/api") is True
        finally:
            server.shutdown()
            server.server_close()
        assert Counting.hits == 1
        with socket.socket() as mute:  # accepts (the kernel's backlog) but never answers
            mute.bind(("127.0.0.1", 0))
            mute.listen(8)
            began = time.monotonic()
            assert await boot.answers("127.0.0.1", mute.getsockname()[1], "/api",
                                      timeout=0.3) is False
            assert time.monotonic() - began < 1.0

    asyncio.run(check())


def test_logs_of_a_container_that_is_gone_are_empty_not_an_error():
    from spawner.docker.engine import container_logs

    class Client:  # docker-py raises NullResource for a None id; never asked here
        def logs(self, *args, **kwargs):
            raise AssertionError("no container id: nothing to ask the engine")

    assert container_logs(Client(), None) == "" and container_logs(Client(), "") == ""
