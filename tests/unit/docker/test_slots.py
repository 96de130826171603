"""Start slots (how many servers boot at once), the apply_user_options check and the
container name prefix of ``LockstepDockerSpawner``; no engine needed."""

from __future__ import annotations

import asyncio
import time

import pytest
from tornado.web import HTTPError
from traitlets.config import Config

from spawner.docker.spawner import LockstepDockerSpawner
from tests.unit.hubfakes import User


@pytest.fixture(autouse=True)
def fresh_gate():
    LockstepDockerSpawner._start_gate = None
    yield
    LockstepDockerSpawner._start_gate = None


def spawner(config: Config, name: str = "u") -> LockstepDockerSpawner:
    return LockstepDockerSpawner(user=User(name), config=config)


async def test_slots_queue_boots_and_release_once():
    c = Config()
    c.LockstepDockerSpawner.start_slots = 2
    first, second, third = (spawner(c, f"u{i}") for i in range(3))
    a = await first._start_slot()
    b = await second._start_slot()
    waiting = asyncio.ensure_future(third._start_slot())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    assert third._events[-1]["message"].startswith("Waiting for a start slot")
    a.release()
    a.release()  # a second release must not free a second slot
    got = await asyncio.wait_for(waiting, 1)
    assert LockstepDockerSpawner._start_gate[1]._value == 0
    b.release()
    got.release()
    assert LockstepDockerSpawner._start_gate[1]._value == 2


async def test_negative_slots_mean_no_limit():
    c = Config()
    c.LockstepDockerSpawner.start_slots = -1
    assert (await spawner(c)._start_slot())._gate is None


async def test_a_hung_boot_frees_its_slot_after_the_grace():
    c = Config()
    c.LockstepDockerSpawner.start_slots = 1
    c.LockstepDockerSpawner.ready_timeout = 0.6
    c.LockstepDockerSpawner.start_slot_grace = 0.2
    hung = spawner(c)
    hung.port = 9  # nothing answers on 127.0.0.1:9
    slot = await hung._start_slot()
    began = time.monotonic()
    assert await hung._wait_ready("127.0.0.1", slot) is False
    assert time.monotonic() - began >= 0.6
    assert slot._gate is None and LockstepDockerSpawner._start_gate[1]._value == 1
    c.LockstepDockerSpawner.ready_timeout = 0
    assert await spawner(c, "v")._wait_ready("127.0.0.1") is None


@pytest.mark.parametrize("cls", [LockstepDockerSpawner])  # Kube: its hook needs a spawner
def test_malformed_user_options_are_a_400_when_the_hub_receives_them(cls):
    hook = cls._trait_default_generators["apply_user_options"](None)  # the class default
    hook(None, {"project": "iris", "stage": "dev", "gpu": "false"})
    with pytest.raises(HTTPError) as err:
        hook(None, {"project": "iris", "image": "evil/image"})
    assert err.value.status_code == 400 and "unknown user_options image" in err.value.log_message


def test_container_names_follow_the_prefix():
    assert spawner(Config(), "alice").object_name == "lockstep-alice"
    c = Config()
    c.LockstepDockerSpawner.prefix = "lockstep-demo"
    assert spawner(c, "alice").object_name == "lockstep-demo-alice"
