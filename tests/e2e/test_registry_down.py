"""A hung registry does not hang spawns: a real hub, a real registry of this module's own
(its own port, its own storage), Docker.

The registry is stopped with SIGSTOP (the kernel still accepts connections, nothing
answers: the worst case, as a hung or overloaded registry). Shown, with
``c.Lockstep.registry_timeout = 1`` and no pointer reuse (``stage_pointer_ttl = 0``, so every
spawn really asks the registry):

* a spawn of a stage whose image is on the host goes on with the last digest the hub read,
  and says so on the spawn page and in the hub log, seconds after the request;
* a spawn whose image would need a pull fails at once with a message naming the registry;
* a spawn of a project the hub never read fails at once naming the registry.

The registry gets SIGCONT and is stopped at the end; containers, networks and volumes of
these projects are removed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time

import pytest

from spawner.image import localregistry
from tests.e2e.hubtools import Hub, free_port
from tests.support.engine import missing

pytestmark = pytest.mark.e2e

PROJECTS = {"e2e-rd-cached": "alice", "e2e-rd-pull": "carol", "e2e-rd-never": "bob"}
TIMEOUT = 1.0  # c.Lockstep.registry_timeout: two tries and a 0.5 s back-off = 2.5 s


def _cleanup(docker_api) -> None:
    from spawner.docker import engine as dockerops

    def ours(labels) -> bool:
        return (labels or {}).get("org.lockstep.project", "") in PROJECTS

    for item in docker_api.containers(all=True, filters={"label": "org.lockstep.managed"}):
        if ours(item["Labels"]):
            dockerops.remove_container(docker_api, item["Id"])
    for net in docker_api.networks(filters={"label": "org.lockstep.managed=true"}):
        if ours(net["Labels"]):
            docker_api.remove_network(net["Id"])
    volumes = docker_api.volumes(filters={"label": "org.lockstep.managed=true"}) or {}
    for volume in volumes.get("Volumes") or []:
        if ours(volume.get("Labels")):
            docker_api.remove_volume(volume["Name"], force=True)


@pytest.fixture(scope="module")
def own_registry(tmp_path_factory, locked_project, built_image):
    """A registry on a free port (nothing else uses it), holding the e2e project image
    (the session's ``lockstep build`` of it, copied by digest from the session registry)
    as each project's ``dev``: (address, pid, digest)."""
    from spawner.image.registry import RegistryClient, copy_image

    if not shutil.which("docker-registry"):
        missing("docker-registry is not installed (apt-get install docker-registry)")
    root = tmp_path_factory.mktemp("regdown-registry")
    addr = f"127.0.0.1:{free_port()}"
    state = localregistry.start(root, addr)
    try:
        assert state.managed and state.pid
        # the image e2e_image is built from (cached for the session): no second build here
        build = built_image(locked_project("e2e-image", ["python=3.11"]))
        host, source_repo = build.reference.split("@")[0].split("/", 1)
        with RegistryClient.for_host(host, insecure_registries=("127.0.0.1",)) as source, \
                RegistryClient.for_host(addr, insecure_registries=("127.0.0.1",)) as client:
            copy_image(source, source_repo, client, "lockstep/e2e-image", build.digest,
                       workdir=root)
            for name in PROJECTS:
                copy_image(client, "lockstep/e2e-image", client, f"lockstep/{name}",
                           build.digest, tags=("dev",), workdir=root)
        yield addr, state.pid, build.digest
    finally:
        os.kill(state.pid, signal.SIGCONT)
        localregistry.stop(root, addr)


@pytest.fixture(scope="module")
def down(tmp_path_factory, own_registry, docker_api, request):
    """A hub that spawned e2e-rd-cached and e2e-rd-pull while the registry answered; then
    e2e-rd-pull's image reference is dropped from the host and the registry is stopped."""
    addr, pid, digest = own_registry
    root = tmp_path_factory.mktemp("regdown-site")
    for name, user in PROJECTS.items():
        (root / "environments" / name).mkdir(parents=True)
        (root / "environments" / name / "project.yaml").write_text(
            f"name: {name}\nmembers: {{users: [{user}]}}\nworkspace: {{enabled: false}}\n"
            "resources: {cpu: 1, memory: 1G}\n")
    (root / "data").mkdir()
    _cleanup(docker_api)
    hub = Hub(root, addr)
    with open(root / "jupyterhub_config.py", "a") as config:
        config.write(f"c.Lockstep.registry_timeout = {TIMEOUT}\n"
                     "c.Lockstep.stage_pointer_ttl = 0\n")
    hub.start()
    try:
        for name, user in list(PROJECTS.items())[:2]:
            response, _ = hub.spawn(user, {"project": name, "stage": "dev"})
            assert response.status_code in (201, 202), response.text
            hub.stop_server(user)
        docker_api.remove_image(f"{addr}/lockstep/e2e-rd-pull@{digest}")
        os.kill(pid, signal.SIGSTOP)
        yield hub, addr, digest
    finally:
        os.kill(pid, signal.SIGCONT)
        if request.session.testsfailed:
            print(f"\n----- hub log (tail) -----\n{hub.log_tail()}")
        hub.stop()
        _cleanup(docker_api)


def test_image_on_host_spawns_with_last_known_digest(down):
    hub, addr, digest = down
    response, took, events = hub.spawn_with_progress("alice", {"project": "e2e-rd-cached"})
    assert response.status_code in (201, 202), response.text
    assert events and events[-1].get("ready") is True, events[-3:]
    notice = next(e["message"] for e in events if "did not answer" in e.get("message", ""))
    assert notice.startswith(f"Registry {addr} did not answer (ReadTimeout"), notice
    assert (f"using the last known digest of {addr}/lockstep/e2e-rd-cached: "
            f"dev = {digest}") in notice
    log = hub.log_path.read_text(errors="replace")
    assert re.search(r"\[W [^\]]*\] lockstep: Registry \S+ did not answer", log)
    # the spawn page shows it once the two tries (and the back-off) are over, not minutes later
    shown = re.findall(r"lockstep alice: \+(\d+\.\d+)s Registry ", log)
    assert shown and float(shown[-1]) < 2 * TIMEOUT + 3, shown
    assert took < 120, took  # the hub's start timeout is 300 s
    hub.stop_server("alice")


def test_spawn_needing_a_pull_fails_fast_naming_the_registry(down):
    hub, addr, digest = down
    began = time.monotonic()
    response = hub.api("POST", "/users/carol/server", {"project": "e2e-rd-pull"})
    took = time.monotonic() - began
    assert response.status_code == 503, response.text
    message = response.json()["message"]
    assert f"{addr}/lockstep/e2e-rd-pull@{digest} is not on this host" in message
    assert f"Registry {addr} did not answer" in message and "lockstep registry start" in message
    assert took < 2 * TIMEOUT + 8, took
    assert hub.server("carol") is None


def test_project_never_read_fails_fast_naming_the_registry(down):
    hub, addr, _ = down
    began = time.monotonic()
    response = hub.api("POST", "/users/bob/server", {"project": "e2e-rd-never"})
    took = time.monotonic() - began
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert f"Registry {addr} did not answer" in message
    assert f"no last known digest for {addr}/lockstep/e2e-rd-never" in message
    assert took < 2 * TIMEOUT + 8, took
