"""A nested mount inside a data source is read-only or refused (issue 11, finding 8), on a
real engine with a real mount.

The test mounts a tmpfs inside a data source. On an engine with
``ReadOnlyForceRecursive`` (Engine API 1.44+) the server's bind forces it read-only too, and
a write into it fails; on an older engine (Docker 20.10 here: API 1.41) ``prepare`` refuses
the data source before anything is created, and the test shows why: a plain read-only bind
of that source, on this engine, leaves the nested tmpfs writable.
"""

from __future__ import annotations

import subprocess
import uuid

import docker
import pytest

from spawner.docker import engine
from spawner.docker.prepare import PrepareError, prepare
from spawner.docker.render import DockerOptions, render_container
from spawner.docker.site import DockerSite
from spawner.docker.submounts import api_has_recursive_read_only
from spawner.launch.spec import ImageRef, build_launch_spec
from spawner.project import parse_project
from tests.support.engine import TEST_LABELS

pytestmark = [pytest.mark.docker, pytest.mark.registry]
WRITE = "open('/data/set/inner/new.txt', 'w').write('x'); print('WROTE')"


@pytest.fixture
def source(tmp_path):
    root = tmp_path / "set"
    (root / "inner").mkdir(parents=True)
    (root / "top.txt").write_text("top\n")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "lockstep-test", root / "inner"],
                   check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", root / "inner"], check=False)


@pytest.fixture(scope="module")
def image(locked_project, built_image, tmp_path_factory) -> ImageRef:
    project_dir = locked_project("gvinit", ["python=3.11"],
                                 root=tmp_path_factory.mktemp("submounts"))
    return ImageRef(built_image(project_dir).reference)


def run_write(api, body: dict) -> str:
    body = {**body, "Entrypoint": ["/opt/env/bin/python", "-c", WRITE], "Cmd": None,
            "Labels": {**body["Labels"], **TEST_LABELS}}
    body["HostConfig"] = {**body["HostConfig"], "NetworkMode": "none"}
    body.pop("NetworkingConfig", None)
    cid = api.create_container_from_config(body)["Id"]
    try:
        api.start(cid)
        api.wait(cid, timeout=60)
        return api.logs(cid).decode()
    finally:
        api.remove_container(cid, force=True)


def test_a_nested_mount_in_a_data_source_is_read_only_or_refused(source, image):
    api = docker.APIClient(version="auto", timeout=120)
    name = f"sm{uuid.uuid4().hex[:8]}"
    project = parse_project(
        f"name: {name}\nworkspace: {{enabled: false}}\n"
        "data:\n  - {name: set, source: x, target: /data/set}\n", source="test")
    spec = build_launch_spec(project=project, image=image, user="alice", stage="dev",
                             data_sources={"set": str(source)}, env={})
    recursive = api_has_recursive_read_only(engine.api_version(api))
    api.pull(image.reference)
    try:
        if recursive:
            ready = prepare(api, spec, project=project, site=DockerSite(firewall=False),
                            pull=False)
            assert ready.recursive_read_only
            body = render_container(spec, DockerOptions(recursive_read_only=True))
            out = run_write(api, body)
            assert "WROTE" not in out and "Read-only file system" in out, out
        else:
            with pytest.raises(PrepareError) as refused:
                prepare(api, spec, project=project, site=DockerSite(firewall=False),
                        pull=False)
            assert refused.value.step == "data" and refused.value.status == 400
            assert f"{source}/inner" in str(refused.value) and "Docker 25" in str(refused.value)
            assert not api.volumes(filters={"label": f"org.lockstep.project={name}"})["Volumes"]
            # why: this engine's plain read-only bind leaves the nested mount writable
            out = run_write(api, render_container(spec, DockerOptions()))
            assert "WROTE" in out, out
            assert (source / "inner" / "new.txt").read_text() == "x"
    finally:
        for volume in (api.volumes(filters={"label": f"org.lockstep.project={name}"})
                       or {}).get("Volumes") or []:
            api.remove_volume(volume["Name"], force=True)
        for network in api.networks(filters={"label": f"org.lockstep.project={name}"}):
            api.remove_network(network["Id"])
