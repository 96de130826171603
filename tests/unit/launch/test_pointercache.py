"""The hub's pointer memory: shared reads, last known digests, and short registry timeouts.

Pointer reads are replaced by a counting stub for the memory's logic; the timeout test uses
a real loopback socket that accepts connections and never answers (a hung registry).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from traitlets.config import Config

from spawner.image.registry import RegistryClient, RegistryUnavailable
from spawner.launch import pointercache, stages
from spawner.launch.choice import settings_source
from spawner.launch.spec import ImageRef
from spawner.settings import Lockstep

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


@pytest.fixture
def settings(tmp_path):
    config = Config()
    config.Lockstep.registry = "reg.example:5000/lockstep"
    config.Lockstep.data_dir = str(tmp_path / "state")
    config.Lockstep.stage_pointer_ttl = 60.0
    return Lockstep(config=config)


class Reads:
    """Stands in for ``stages.read_pointers``: counts calls, answers or raises."""

    def __init__(self, monkeypatch):
        self.calls = 0
        self.answer: dict | Exception = {}
        monkeypatch.setattr(stages, "read_pointers", self)

    def __call__(self, settings, repository, names):
        self.calls += 1
        time.sleep(0.05)  # long enough for concurrent asks to overlap
        if isinstance(self.answer, Exception):
            raise self.answer
        return {s: ImageRef(f"{repository}@{d}", lock_hash="l" * 64)
                for s, d in self.answer.items() if s in names}


DOWN = RegistryUnavailable("registry reg.example:5000 did not answer HEAD /v2/lockstep/iris/"
                           "manifests/dev (ReadTimeout: timed out); start it with ...")


async def test_one_read_serves_concurrent_and_later_asks(settings, monkeypatch):
    reads = Reads(monkeypatch)
    reads.answer = {"dev": DIGEST}
    cache = pointercache.PointerCache(None)
    got = await asyncio.gather(*(cache.stage_images(settings, "iris") for _ in range(10)))
    assert reads.calls == 1
    assert all(g == {"dev": got[0]["dev"]} and g.notice == "" for g in got)
    await cache.stage_images(settings, "iris")
    assert reads.calls == 1  # within the TTL
    settings.stage_pointer_ttl = 0
    await cache.stage_images(settings, "iris")
    assert reads.calls == 2


async def test_registry_down_uses_last_known_and_says_so(settings, monkeypatch):
    reads = Reads(monkeypatch)
    settings.stage_pointer_ttl = 0
    reads.answer = {"dev": DIGEST, "qa": OTHER}
    cache = pointercache.PointerCache(settings.data_path(pointercache.FILENAME))
    await cache.stage_images(settings, "iris")
    reads.answer = DOWN
    got = await cache.stage_images(settings, "iris")
    assert got["dev"].digest == DIGEST and got["qa"].digest == OTHER
    assert got["dev"].lock_hash == "l" * 64
    assert "Registry reg.example:5000 did not answer (ReadTimeout: timed out)" in got.notice
    assert f"last known digest of reg.example:5000/lockstep/iris: dev = {DIGEST}" in got.notice
    # a new hub process (fresh memory) reads them back from data_dir
    again = await pointercache.PointerCache(
        settings.data_path(pointercache.FILENAME)).stage_images(settings, "iris")
    assert again["qa"].digest == OTHER and "did not answer" in again.notice


async def test_registry_down_without_last_known_names_the_registry(settings, monkeypatch):
    Reads(monkeypatch).answer = DOWN
    with pytest.raises(stages.StageError, match=r"Registry reg.example:5000 did not answer .*"
                       r"no last known digest for reg.example:5000/lockstep/iris"):
        await pointercache.PointerCache(None).stage_images(settings, "iris")


async def test_failure_is_remembered_for_the_ttl(settings, monkeypatch):
    reads = Reads(monkeypatch)
    reads.answer = DOWN
    cache = pointercache.PointerCache(None)
    for _ in range(3):
        with pytest.raises(stages.StageError):
            await cache.stage_images(settings, "iris")
    assert reads.calls == 1


async def test_removed_pointer_is_forgotten_and_file_written_only_on_change(settings,
                                                                         monkeypatch):
    reads = Reads(monkeypatch)
    settings.stage_pointer_ttl = 0
    path = settings.data_path(pointercache.FILENAME)
    cache = pointercache.PointerCache(path)
    reads.answer = {"dev": DIGEST, "qa": OTHER}
    await cache.stage_images(settings, "iris")
    stamp = path.stat().st_mtime_ns
    time.sleep(0.01)
    await cache.stage_images(settings, "iris")
    assert path.stat().st_mtime_ns == stamp
    reads.answer = {"dev": DIGEST}
    await cache.stage_images(settings, "iris")
    kept = json.loads(path.read_text())["pointers"]["reg.example:5000/lockstep/iris"]
    assert set(kept) == {"dev"}


async def test_settings_source_carries_the_notice_to_the_choice(settings, monkeypatch):
    from spawner.launch.access import Requester
    from spawner.launch.choice import choose
    from spawner.project import Project

    reads = Reads(monkeypatch)
    settings.stage_pointer_ttl = 0
    reads.answer = {"dev": DIGEST}
    monkeypatch.setattr(pointercache, "_caches", {})
    source = settings_source(settings)
    project = Project.model_validate({"name": "iris", "members": {"users": ["alice"]}})
    who = Requester(name="alice", groups=frozenset(), admin=False)
    first = await choose({"project": "iris"}, who, {"iris": project}, settings.stages, source)
    assert first.notice == ""
    reads.answer = DOWN
    later = await choose({"project": "iris"}, who, {"iris": project}, settings.stages, source)
    assert later.image.digest == DIGEST and "did not answer" in later.notice
    assert "cannot be pulled now" in pointercache.pull_refusal(later.image.reference,
                                                               later.notice)


def test_hung_registry_read_times_out_fast_with_one_retry(settings):
    with socket.socket() as hung:  # accepts connections (backlog), never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        host = f"127.0.0.1:{hung.getsockname()[1]}"
        settings.registry_timeout = 0.5
        settings.insecure_registries = ["127.0.0.1"]
        began = time.monotonic()
        with pytest.raises(RegistryUnavailable, match=f"registry {host} did not answer HEAD"):
            stages.read_pointers(settings, f"{host}/lockstep/iris", ["dev"])
        took = time.monotonic() - began
    assert 1.0 <= took < 3.0  # two tries of 0.5 s and the back-off, not 300 s


def test_refusal_and_5xx_are_unavailable_but_401_is_not():
    import httpx

    def answer(request):
        return httpx.Response(503 if "down" in request.url.path else 401)

    client = RegistryClient("r.example", transport=httpx.MockTransport(answer), retries=1)
    with pytest.raises(RegistryUnavailable, match="answered 503"):
        client.get_manifest("down/x", "dev")
    with pytest.raises(Exception, match="docker login r.example") as refused:
        client.get_manifest("up/x", "dev")
    assert not isinstance(refused.value, RegistryUnavailable)
