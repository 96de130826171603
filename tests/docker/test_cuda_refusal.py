"""A project whose GPU code needs a newer CUDA than the Docker host's driver supports is
refused by ``LockstepDockerSpawner`` before anything starts: the spawner against the real
dockerd (its ``docker info``), the host's CUDA version set by the site
(``c.LockstepDockerSpawner.host_cuda_version``), ``gpu_mode = "nvidia"`` so that the GPU
check itself passes on this GPU-less host and the CUDA check is what refuses.
"""

from __future__ import annotations

import pytest
from traitlets.config import Config

from spawner.docker.spawner import LockstepDockerSpawner
from spawner.launch.spec import ImageRef
from spawner.project import load_project
from tests.unit.hubfakes import User

pytestmark = [pytest.mark.docker]
IMAGE = ImageRef("127.0.0.1:5000/lockstep/cuda-test@sha256:" + "0" * 64, "sha256:" + "1" * 64)


def spawner_for(tmp_path, host_cuda: str) -> LockstepDockerSpawner:
    folder = tmp_path / "environments" / "cuda-test"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "project.yaml").write_text(
        'name: cuda-test\nmembers: {users: [carol]}\ngpu: {count: 1, cuda: ">=12.0"}\n')
    config = Config()
    config.Lockstep.environments_dir = str(tmp_path / "environments")
    config.Lockstep.data_dir = str(tmp_path / "data")
    config.LockstepDockerSpawner.gpu_mode = "nvidia"
    config.LockstepDockerSpawner.host_cuda_version = host_cuda
    spawner = LockstepDockerSpawner(user=User("carol"), config=config)
    project = load_project(folder)

    async def resolve_request():  # the stage pointer lookup is not what this test is about
        return project, "dev", IMAGE, None

    spawner.resolve_request = resolve_request
    return spawner


async def test_a_too_old_driver_is_a_400_before_any_container_or_network(tmp_path, docker_client):
    def lockstep_objects():
        return (docker_client.containers.list(all=True, filters={"name": "cuda-test"}),
                docker_client.networks.list(names=["lockstep-cuda-test"]),
                docker_client.volumes.list(filters={"label": "org.lockstep.project=cuda-test"}))

    assert lockstep_objects() == ([], [], [])
    spawner = spawner_for(tmp_path, "11.8")
    with pytest.raises(Exception) as err:
        await spawner.start()
    assert getattr(err.value, "status_code", None) == 400, repr(err.value)
    message = err.value.jupyterhub_message
    assert "'cuda-test' needs CUDA >=12.0" in message and "supports CUDA 11.8" in message
    assert "c.LockstepDockerSpawner.host_cuda_version = '11.8'" in message
    assert lockstep_objects() == ([], [], [])


async def test_a_new_enough_driver_passes_the_host_check(tmp_path, docker_client):
    spawner = spawner_for(tmp_path, "12.4")
    project = (await spawner.resolve_request())[0]
    want_gpu, gpu_mode, _, _ = await spawner._check_host(project, None)
    assert (want_gpu, gpu_mode) == (True, "nvidia")
