"""The Docker spawner's persisted state across a hub restart, and every reader of it.

A server is started (its session recorded), its ``get_state()`` goes through JSON as the
Hub's database keeps it, a second spawner (the restarted hub) loads it, and stopping that
spawner closes the very session the first one opened. The engine is a recording stand-in
for ``DockerSpawner.docker``: what is checked is the spawner's own bookkeeping.
"""

from __future__ import annotations

import json

from traitlets.config import Config

from spawner import sessions
from spawner.docker.spawner import LockstepDockerSpawner
from spawner.launch.state import LaunchState, from_state
from tests.unit.hubfakes import User

DIGEST = "sha256:" + "ab" * 32
IMAGE = f"127.0.0.1:5000/lockstep/iris@{DIGEST}"
LAUNCH = LaunchState(project="iris", stage="qa", image=IMAGE, lock_hash="f" * 64,
                     session="4f1c2a9b0e7d", engine={"network": "lockstep-iris"})


class RecordingEngine(LockstepDockerSpawner):
    """``docker(method, ...)`` records the call instead of reaching an engine."""

    calls: list

    async def docker(self, method, *args, **kwargs):
        self.calls = [*getattr(self, "calls", []), (method, *args)]
        return None


def spawner(tmp_path) -> RecordingEngine:
    c = Config()
    c.Lockstep.data_dir = str(tmp_path)
    return RecordingEngine(user=User("alice"), config=c)


def log_path(tmp_path):
    return tmp_path / sessions.FILENAME


async def started(tmp_path) -> dict:
    """A server started by the first hub: its state, as the Hub's database returns it."""
    first = spawner(tmp_path)
    first.object_id, first._launch = "c0ffee", LAUNCH
    await first._record_start()
    return json.loads(json.dumps(first.get_state()))


async def test_state_has_the_launch_state_shape_with_the_digest_in_the_image(tmp_path):
    state = await started(tmp_path)
    assert state["object_id"] == "c0ffee" and state["object_name"] == "lockstep-alice"
    saved = state["lockstep"]
    assert set(saved) == {"project", "stage", "image", "lock_hash", "session", "started",
                          "engine"}  # no separate 'digest' key: it is part of 'image'
    assert saved["image"] == IMAGE and saved["engine"] == {"network": "lockstep-iris"}
    assert from_state(state).digest == DIGEST
    [session] = sessions.read_sessions(log_path(tmp_path))
    assert (session.id, session.digest, session.image) == (LAUNCH.session, DIGEST, IMAGE)
    assert session.container_id == "c0ffee" and session.start == saved["started"]
    assert session.stop == ""


async def test_a_restarted_hub_readopts_the_server_and_closes_its_session(tmp_path):
    state = await started(tmp_path)
    second = spawner(tmp_path)  # the hub restarted: a new spawner, state from the database
    second.load_state(state)
    assert second.get_state() == state  # nothing lost or reshaped by the round trip
    assert second.object_id == "c0ffee"
    await second.stop()
    assert second.calls == [("stop", "c0ffee"), ("remove_container", "c0ffee")]
    assert "lockstep" not in second.get_state() and not second.object_id
    [session] = sessions.read_sessions(log_path(tmp_path))
    assert session.id == LAUNCH.session and session.stop  # the same session, closed
    events = sessions.read_events(log_path(tmp_path))
    assert [e["event"] for e in events] == ["start", "stop"]


async def test_the_previous_docker_state_shape_is_read_and_rewritten(tmp_path):
    """State written before LaunchState (flat keys with 'digest' and 'network') survives."""
    old = {"object_id": "c0ffee", "object_name": "lockstep-alice--gpu",
           "lockstep": {"project": "iris", "stage": "qa", "image": IMAGE, "digest": DIGEST,
                        "lock_hash": "f" * 64, "network": "lockstep-iris",
                        "session": LAUNCH.session, "started": "2026-01-01T00:00:00.0Z"}}
    adopted = spawner(tmp_path)
    adopted.load_state(old)
    assert adopted.object_name == "lockstep-alice--gpu"  # the persisted name wins
    assert adopted.get_state()["lockstep"] == {**LAUNCH.to_dict(),
                                               "started": "2026-01-01T00:00:00.0Z"}
    await adopted.stop()
    events = sessions.read_events(log_path(tmp_path))
    assert events == [{"event": "stop", "id": LAUNCH.session, "user": "alice",
                       "stop": events[0]["stop"]}]


async def test_a_stopped_server_without_a_container_writes_no_session_event(tmp_path):
    empty = spawner(tmp_path)
    empty.load_state({})
    assert empty.get_state() == {}
    empty.get_object = _no_object  # DockerSpawner asks the engine: nothing there
    await empty.stop()
    assert not log_path(tmp_path).exists()


async def _no_object():
    return None
