"""LockstepKubeSpawner start, poll and stop against an in-memory Kubernetes API (kmock).

kmock's emulator stores objects and streams watch events but runs no kubelet; the
``kubelet`` fixture plays that part: it marks each new pod Running and ready (or lets a
test end its container), through the same HTTP API the hub uses.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from kubespawner import KubeSpawner
from tornado import web

from spawner import sessions
from spawner.kube.spawner import LockstepKubeSpawner
from tests.k8s.k8s_helpers import FakeStagesSpawner, fake_image, hub_user, make_spawner
from tests.k8s.kmock_api import (
    POD_IP,
    ApiServer,
    claims,
    config,
    container_status,
    patch_pod,
    pods,
)

pytestmark = pytest.mark.kmock(cls=ApiServer)


async def test_start_poll_stop(api, kubelet, tmp_path):
    spawner = make_spawner(config(api, tmp_path))
    spawner.user_options = {"project": "forecast", "stage": "qa"}
    assert await spawner.poll() == 1  # nothing running yet

    url = await asyncio.wait_for(spawner.start(), 30)
    assert url == f"http://{POD_IP}:8888"
    (pod,) = pods(api).values()
    assert pod["metadata"]["name"] == spawner.pod_name
    assert pod["spec"]["containers"][0]["image"] == fake_image("forecast", "qa").reference
    assert pod["metadata"]["labels"]["org.lockstep.project"] == "forecast"
    assert pod["metadata"]["labels"]["component"] == "singleuser-server"  # reflector selects it
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_API_TOKEN"] == "token-not-secret"
    assert set(claims(api)) == {"lockstep-ws-forecast", "lockstep-home-forecast.alice"}
    assert claims(api)["lockstep-ws-forecast"]["spec"]["accessModes"] == ["ReadWriteMany"]

    assert await spawner.poll() is None
    state = spawner.get_state()
    launch = state["lockstep"]  # spawner.launch.state.LaunchState, as on Docker
    assert launch["image"] == fake_image("forecast", "qa").reference
    assert launch["lock_hash"] == fake_image("forecast", "qa").lock_hash
    assert (launch["project"], launch["stage"]) == ("forecast", "qa")
    assert launch["session"] and launch["started"]
    assert state["pod_name"] == spawner.pod_name

    await asyncio.wait_for(spawner.stop(now=True), 30)
    assert pods(api) == {}
    assert await spawner.poll() == 1
    log = sessions.read_sessions(tmp_path / "state" / sessions.FILENAME)
    assert [(s.user, s.project, s.stage, s.image) for s in log] == [
        ("alice", "forecast", "qa", fake_image("forecast", "qa").reference)]
    assert log[0].start and log[0].stop


async def test_poll_reports_exit_code_and_cleans_up(api, kubelet, tmp_path):
    spawner = make_spawner(config(api, tmp_path))
    spawner.user_options = {"project": "sandbox"}
    await asyncio.wait_for(spawner.start(), 30)
    (name,) = pods(api)
    await patch_pod(api, name, {"containerStatuses": [
        container_status(False, {"terminated": {"exitCode": 3}})]})
    for _ in range(100):
        code = await spawner.poll()
        if code is not None:
            break
        await asyncio.sleep(0.05)
    assert code == 3
    assert pods(api) == {}  # delete_stopped_pods


async def test_state_survives_a_hub_restart(api, kubelet, tmp_path):
    first = make_spawner(config(api, tmp_path), user=hub_user("carol"))
    first.user_options = {"project": "vision"}
    await asyncio.wait_for(first.start(), 30)
    state = json.loads(json.dumps(first.get_state()))  # as the hub database keeps it

    second = make_spawner(config(api, tmp_path), user=hub_user("carol"))  # a new hub process
    second.load_state(state)
    assert second.get_state()["lockstep"]["image"] == fake_image("vision", "prod").reference
    assert second.image == fake_image("vision", "prod").reference
    assert await second.poll() is None
    await asyncio.wait_for(second.stop(now=True), 30)
    assert pods(api) == {}
    (session,) = sessions.read_sessions(tmp_path / "state" / sessions.FILENAME)
    assert session.stop  # the stop is recorded by the spawner that never started it
    second.clear_state()
    assert "lockstep" not in second.get_state()


@pytest.mark.parametrize("user,options,status", [
    (hub_user("mallory"), {"project": "forecast"}, 404),  # as if it did not exist
    (hub_user("alice"), {"project": "nope"}, 404),
    (hub_user("alice"), {}, 400),
    (hub_user("alice"), {"project": "forecast", "stage": "staging"}, 400),
])
async def test_refusals_create_nothing(api, tmp_path, user, options, status):
    spawner = make_spawner(config(api, tmp_path), user=user)
    spawner.user_options = options
    with pytest.raises(web.HTTPError) as info:
        await asyncio.wait_for(spawner.start(), 30)
    assert info.value.status_code == status
    assert info.value.jupyterhub_message
    assert pods(api) == {} and claims(api) == {}


async def test_stage_without_image_is_409(api, tmp_path):
    class NoProd(FakeStagesSpawner):
        missing_stages = ("prod",)

    spawner = make_spawner(config(api, tmp_path), cls=NoProd)
    spawner.user_options = {"project": "forecast", "stage": "prod"}
    with pytest.raises(web.HTTPError) as info:
        await spawner.start()
    assert info.value.status_code == 409
    assert "lockstep promote forecast --to prod" in info.value.jupyterhub_message


async def test_group_member_and_admin_may_launch(api, kubelet, tmp_path):
    for user in (hub_user("bob", groups=("analysts",)), hub_user("root", admin=True)):
        spawner = make_spawner(config(api, tmp_path), user=user)
        spawner.user_options = {"project": "forecast"}
        url = await asyncio.wait_for(spawner.start(), 30)
        assert url == f"http://{POD_IP}:8888"
        (pod,) = pods(api).values()
        assert pod["metadata"]["labels"]["org.lockstep.user"] == user.name
        assert pod["spec"]["containers"][0]["image"] == fake_image("forecast", "prod").reference
        assert f"lockstep-home-forecast.{user.name}" in claims(api)
        await asyncio.wait_for(spawner.stop(now=True), 30)
        assert pods(api) == {}


async def test_replay_a_recorded_session(api, kubelet, tmp_path):
    spawner = make_spawner(config(api, tmp_path))
    spawner.user_options = {"project": "forecast", "stage": "dev"}
    await asyncio.wait_for(spawner.start(), 30)
    await asyncio.wait_for(spawner.stop(now=True), 30)
    (old,) = sessions.read_sessions(tmp_path / "state" / sessions.FILENAME)

    class Moved(FakeStagesSpawner):  # dev has moved on since; the replay must not follow it
        async def stage_images(self, project):
            raise AssertionError("a replay must not read stage pointers")

    again = make_spawner(config(api, tmp_path), cls=Moved)
    again.user_options = {"session": old.id}
    await asyncio.wait_for(again.start(), 30)
    (pod,) = pods(api).values()
    assert pod["spec"]["containers"][0]["image"] == old.image
    await asyncio.wait_for(again.stop(now=True), 30)

    other = make_spawner(config(api, tmp_path), user=hub_user("carol"), cls=Moved)
    other.user_options = {"session": old.id}
    with pytest.raises(web.HTTPError) as info:
        await other.start()
    assert info.value.status_code == 403


async def test_options_form_lists_only_usable_projects(api, tmp_path):
    spawner = make_spawner(config(api, tmp_path), user=hub_user("carol"))
    form = await spawner.get_options_form()
    assert 'value="sandbox/prod" checked' in form and "vision/dev" in form
    assert "forecast" not in form
    assert 'name="no_gpu"' in form  # carol may launch vision, which has GPUs
    assert spawner.options_from_form({"target": ["vision/qa"], "no_gpu": ["on"]}) == {
        "project": "vision", "stage": "qa", "gpu": False}


def test_entry_class_is_a_kubespawner():
    assert issubclass(LockstepKubeSpawner, KubeSpawner)


async def test_gpu_false_and_pinned_digest_options(api, kubelet, tmp_path):
    class Pinned(FakeStagesSpawner):
        async def pinned_image(self, project, digest, stage):
            return fake_image(project.name, "pinned")  # no registry to read the label from

    spawner = make_spawner(config(api, tmp_path), user=hub_user("carol"), cls=Pinned)
    spawner.user_options = {"project": "vision", "gpu": False}
    await asyncio.wait_for(spawner.start(), 30)
    (pod,) = pods(api).values()
    assert "nvidia.com/gpu" not in pod["spec"]["containers"][0]["resources"]["limits"]
    await asyncio.wait_for(spawner.stop(now=True), 30)

    digest = fake_image("vision", "pinned").digest
    spawner.user_options = {"project": "vision", "digest": digest}
    await asyncio.wait_for(spawner.start(), 30)
    (pod,) = pods(api).values()
    assert pod["spec"]["containers"][0]["image"].endswith("@" + digest)
    assert pod["metadata"]["labels"]["org.lockstep.stage"] == "pinned"
    await asyncio.wait_for(spawner.stop(now=True), 30)

    spawner.user_options = {"project": "sandbox", "gpu": True}
    with pytest.raises(web.HTTPError) as info:
        await spawner.start()
    assert info.value.status_code == 400 and "no GPUs" in info.value.jupyterhub_message


async def test_registry_down_notice_leads_the_progress(api, kubelet, tmp_path):
    from spawner.launch.pointercache import StageImages

    notice = "registry 10.0.0.9:5000 did not answer; using the last known digest"

    class Stale(FakeStagesSpawner):  # what pointercache answers when the registry is down
        async def stage_images(self, project):
            return StageImages(await super().stage_images(project), notice)

    spawner = make_spawner(config(api, tmp_path), cls=Stale)
    spawner.user_options = {"project": "forecast", "stage": "qa"}
    await asyncio.wait_for(spawner.start(), 30)
    messages = [event["message"] async for event in spawner.progress()]
    assert messages[0] == notice and messages.count(notice) == 1
    (pod,) = pods(api).values()
    assert pod["spec"]["containers"][0]["image"] == fake_image("forecast", "qa").reference
    await asyncio.wait_for(spawner.stop(now=True), 30)

    fresh = make_spawner(config(api, tmp_path))
    fresh.user_options = {"project": "forecast", "stage": "qa"}
    await asyncio.wait_for(fresh.start(), 30)
    assert notice not in [event["message"] async for event in fresh.progress()]
    await asyncio.wait_for(fresh.stop(now=True), 30)
