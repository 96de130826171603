"""A spawn's new home and workspace volumes are handed to uid 1000 by one helper container.

``spawner.docker.prepare`` creates the volumes a launch spec names that do not exist yet
and chowns them all with one one-shot ``volume-init`` container (each helper container is a
create, start, wait and remove on the Hub's behalf), then none at all once they exist. A
real dockerd; a recording client notes each container the moment it is started.
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
from tests.support.engine import remove_project

pytestmark = [pytest.mark.docker, pytest.mark.registry]


class Recording(docker.APIClient):
    """The real client; ``start`` first notes the started container's role and mounts."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started: list[tuple[str, list[str]]] = []

    def start(self, container, *args, **kwargs):
        info = self.inspect_container(container)
        role = (info["Config"]["Labels"] or {}).get("org.lockstep.role", "")
        self.started.append(
            (role, sorted(m["Name"] for m in info["Mounts"] if m["Type"] == "volume"))
        )
        return super().start(container, *args, **kwargs)


@pytest.fixture(scope="module")
def image(locked_project, built_image, tmp_path_factory) -> ImageRef:
    project_dir = locked_project(
        "volinit", ["python=3.11"], root=tmp_path_factory.mktemp("volinit")
    )
    return ImageRef(built_image(project_dir).reference)


def test_new_home_and_workspace_get_one_helper_and_existing_ones_none(image):
    api = Recording(version="auto", timeout=120)
    name = f"vi{uuid.uuid4().hex[:8]}"
    project = parse_project(f"name: {name}\n", source="test")
    spec = build_launch_spec(
        project=project, image=image, user="alice", stage="dev", data_sources={}, env={}
    )
    home, workspace = f"lockstep-home-{name}_alice", f"lockstep-ws-{name}"
    reports: list[str] = []
    api.pull(image.reference)
    try:
        ready = prepare(
            api,
            spec,
            project=project,
            site=DockerSite(firewall=False),
            pull=False,
            report=lambda message, _: reports.append(message),
        )
        assert sorted(ready.created_volumes) == sorted([home, workspace])
        assert api.started == [("volume-init", sorted([home, workspace]))]
        assert sorted(reports) == [f"Created volume {home}", f"Created volume {workspace}"]
        for volume in (home, workspace):
            mountpoint = api.inspect_volume(volume)["Mountpoint"]
            assert os.stat(mountpoint).st_uid == 1000  # both really chowned
            assert os.stat(mountpoint).st_mode & 0o777 == 0o775
        assert not api.containers(all=True, filters={"label": f"org.lockstep.project={name}"})
        again = prepare(api, spec, project=project, site=DockerSite(firewall=False), pull=False)
        assert again.created_volumes == () and len(api.started) == 1  # no helper this time
    finally:
        remove_project(api, name)
