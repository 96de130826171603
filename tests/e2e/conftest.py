"""A real JupyterHub (subprocess) + configurable-http-proxy + Docker, driven by its REST API.

Fixtures
--------
``e2e_image``
    The project image every e2e project runs: built by ``lockstep build`` through helper
    "image"'s ``locked_project`` + ``built_image`` fixtures (offline test channel, local
    registry on 127.0.0.1:5000), copied by digest to each e2e project's ``dev`` tag.
    ``LOCKSTEP_E2E_IMAGE=HOST/REPO@sha256:...`` uses an image already in a registry instead
    (for working on these tests, not for CI).
``site``
    A temp environments dir with projects ``e2e-alpha`` (alice, group alpha-team: bob),
    ``e2e-beta`` (carol), ``e2e-sandbox`` (gVisor, alice) and ``e2e-vision`` (1 GPU,
    carol), each with a ``dev`` pointer to ``e2e_image``; shared data under a temp root.
``hub``
    The running hub (module scope), with ``api()``, ``spawn()``, ``restart()``.

Containers, networks and volumes are removed by label at the end; the hub log is printed
when a test failed. Needs root (iptables), dockerd and configurable-http-proxy.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import pytest

from tests.e2e.hubtools import RUN_ID, Hub
from tests.support.engine import REQUIRED, missing

PROJECTS = {
    "e2e-alpha": ("members: {users: [alice], groups: [alpha-team]}\n"
                  "data:\n  - {name: shared, source: e2e-alpha, target: /data/shared}\n"
                  "resources: {cpu: 1, memory: 1G, pids: 256}\n"),
    "e2e-beta": "members: {users: [carol]}\nresources: {cpu: 1, memory: 1G}\n",
    "e2e-sandbox": ("members: {users: [alice]}\nisolation: gvisor\nworkspace: {enabled: false}\n"
                    "resources: {cpu: 1, memory: 1G}\n"),
    "e2e-vision": "members: {users: [carol]}\ngpu: {count: 1}\nresources: {cpu: 1, memory: 1G}\n",
}


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (the spawner writes iptables rules)"
    if not shutil.which("configurable-http-proxy"):
        return "configurable-http-proxy is not installed (npm install -g configurable-http-proxy)"
    try:
        import docker

        docker.APIClient(version="auto").ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        return f"no Docker engine: {exc}"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            if reason and not REQUIRED:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session", autouse=True)
def _what_e2e_needs():
    """Under ``scripts/test.sh`` (``LOCKSTEP_REQUIRE_ENGINE=1``) a missing part fails, named."""
    if REQUIRED and (reason := _skip_reason()):
        missing(reason)


@pytest.fixture(scope="session")
def docker_api():
    import docker

    return docker.APIClient(version="auto", timeout=120)


@dataclass(frozen=True)
class SourceImage:
    registry: str  # HOST:PORT
    repo: str  # lockstep/foo
    digest: str


@pytest.fixture(scope="session")
def e2e_image(request) -> SourceImage:
    """The image all e2e projects run: ``lockstep build`` of a python 3.11 project locked
    against the offline test channel (jupyterhub-singleuser + ipykernel are added by lock)."""
    ref = os.environ.get("LOCKSTEP_E2E_IMAGE", "")
    if not ref:
        project_dir = request.getfixturevalue("locked_project")("e2e-image", ["python=3.11"])
        ref = request.getfixturevalue("built_image")(project_dir).reference
    repository, _, digest = ref.partition("@")
    host, _, repo = repository.partition("/")
    return SourceImage(host, repo, digest)


@pytest.fixture(scope="module")
def site(tmp_path_factory, e2e_image):
    from spawner.image.registry import RegistryClient, copy_image

    root = tmp_path_factory.mktemp("site")
    env = root / "environments"
    for name, body in PROJECTS.items():
        (env / name).mkdir(parents=True)
        (env / name / "project.yaml").write_text(f"name: {name}\n{body}")
    data = root / "data"
    (data / "e2e-alpha").mkdir(parents=True)
    (data / "e2e-alpha" / "hello.txt").write_text("hello from shared data\n")
    client = RegistryClient.for_host(e2e_image.registry, insecure_registries=("127.0.0.1",))
    with client:
        for name in PROJECTS:
            copy_image(client, e2e_image.repo, client, f"lockstep/{name}", e2e_image.digest,
                       tags=("dev",), workdir=root)
    return root


def cleanup_docker(docker_api) -> None:
    from spawner.docker import engine as dockerops

    for container in docker_api.containers(all=True,
                                           filters={"label": f"org.lockstep-e2e.run={RUN_ID}"}):
        dockerops.remove_container(docker_api, container["Id"])
    for container in docker_api.containers(all=True, filters={"label": "org.lockstep.managed"}):
        if container["Labels"].get("org.lockstep.project", "").startswith("e2e-"):
            dockerops.remove_container(docker_api, container["Id"])
    for net in docker_api.networks(filters={"label": "org.lockstep.managed=true"}):
        if net["Labels"].get("org.lockstep.project", "").startswith("e2e-"):
            docker_api.remove_network(net["Id"])
    volumes = docker_api.volumes(filters={"label": "org.lockstep.managed=true"})
    for volume in (volumes or {}).get("Volumes") or []:
        if (volume.get("Labels") or {}).get("org.lockstep.project", "").startswith("e2e-"):
            docker_api.remove_volume(volume["Name"], force=True)


def forget_images(docker_api, image: SourceImage) -> None:
    """Drop the e2e projects' image references so the first spawn really pulls."""
    import docker

    for name in PROJECTS:
        try:
            docker_api.remove_image(f"{image.registry}/lockstep/{name}@{image.digest}")
        except docker.errors.APIError:
            pass


@pytest.fixture(scope="module")
def hub(site, e2e_image, docker_api, request):
    cleanup_docker(docker_api)
    forget_images(docker_api, e2e_image)
    running = Hub(site, e2e_image.registry)
    running.start()
    yield running
    if request.session.testsfailed:
        print(f"\n----- hub log (tail) -----\n{running.log_tail()}")
    running.stop()
    if os.environ.get("LOCKSTEP_E2E_LOG"):  # keep the whole hub log for a look afterwards
        shutil.copy(running.log_path, os.environ["LOCKSTEP_E2E_LOG"])
    cleanup_docker(docker_api)


