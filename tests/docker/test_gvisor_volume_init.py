"""A gVisor project's volumes are prepared under runsc (issue 11, finding 7), on a real engine.

``spawner.docker.prepare`` hands a new home volume to uid 1000 with a one-shot container
that runs the project's image as root with CHOWN/FOWNER. For a gVisor project that container
must run under runsc too (the image's code never meets the host kernel as root under runc).
The engine is a real dockerd with runsc registered (scripts/register-runtimes.sh); a
recording client inspects every container the moment it is started, so what is checked is
the engine's own ``HostConfig.Runtime`` of the volume-init container, not the body sent.
"""

from __future__ import annotations

import os
import uuid

import docker
import pytest

from spawner.docker.prepare import prepare
from spawner.docker.site import DockerSite
from spawner.launch.spec import ImageRef, build_launch_spec
from spawner.project import parse_project
from tests.support.engine import missing

pytestmark = [pytest.mark.docker, pytest.mark.registry]


class Recording(docker.APIClient):
    """The real client; ``start`` first notes the started container's role and runtime."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started: list[tuple[str, str]] = []

    def start(self, container, *args, **kwargs):
        info = self.inspect_container(container)
        role = (info["Config"]["Labels"] or {}).get("org.lockstep.role", "")
        self.started.append((role, info["HostConfig"].get("Runtime") or ""))
        return super().start(container, *args, **kwargs)


@pytest.fixture(scope="module")
def image(locked_project, built_image, tmp_path_factory) -> ImageRef:
    project_dir = locked_project("gvinit", ["python=3.11"],
                                 root=tmp_path_factory.mktemp("gvinit"))
    return ImageRef(built_image(project_dir).reference)


@pytest.fixture
def api():
    client = Recording(version="auto", timeout=120)
    if "runsc" not in (client.info().get("Runtimes") or {}):
        missing("runsc is not registered with dockerd (scripts/register-runtimes.sh)")
    return client


@pytest.mark.parametrize(("isolation", "runtime"), [("gvisor", "runsc"), ("runc", "runc")])
def test_the_volume_init_container_runs_under_the_projects_runtime(api, image, isolation,
                                                                   runtime):
    name = f"gv{uuid.uuid4().hex[:8]}"
    project = parse_project(f"name: {name}\nisolation: {isolation}\n"
                            "workspace: {enabled: false}\n", source="test")
    spec = build_launch_spec(project=project, image=image, user="alice", stage="dev",
                             data_sources={}, env={})
    api.pull(image.reference)
    try:
        ready = prepare(api, spec, project=project, site=DockerSite(firewall=False),
                        pull=False)
        assert ready.runtime == (runtime if isolation == "gvisor" else "")
        home = f"lockstep-home-{name}_alice"
        assert ready.created_volumes == (home,)
        assert api.started == [("volume-init", runtime)]
        mountpoint = api.inspect_volume(home)["Mountpoint"]
        assert os.stat(mountpoint).st_uid == 1000  # the chown really happened under runsc
        assert not api.containers(all=True, filters={"label": f"org.lockstep.project={name}"})
    finally:
        for volume in (api.volumes(filters={"label": f"org.lockstep.project={name}"})
                       or {}).get("Volumes") or []:
            api.remove_volume(volume["Name"], force=True)
        for network in api.networks(filters={"label": f"org.lockstep.project={name}"}):
            api.remove_network(network["Id"])
