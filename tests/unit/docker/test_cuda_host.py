"""The Docker host check for a project's CUDA requirement (pure over the site and the
host's version; the real-engine refusal is ``tests/docker/test_cuda_refusal.py``)."""

from __future__ import annotations

import pytest

from spawner.cuda import CudaError, CudaVersion
from spawner.docker import prepare
from spawner.docker.gpu import check_cuda
from spawner.docker.site import DockerSite, site_from_config
from spawner.docker.traits import LockstepDockerTraits
from spawner.errors import LockstepError
from spawner.launch.spec import GpuRequest
from spawner.project import parse_project

INFO = {"Runtimes": {"runc": {}, "nvidia": {}}, "ServerVersion": "27.0.0"}
VISION = parse_project('name: vision\ngpu: {count: 1, cuda: ">=12.0"}\n', source="p.yaml")
NEEDS_12 = GpuRequest(1, "nvidia", "", ">=12.0")


def test_too_old_a_driver_is_refused_naming_both_versions_and_the_setting():
    site = DockerSite(host_cuda_version="11.8")
    with pytest.raises(CudaError) as err:
        prepare.check_host(NEEDS_12, project=VISION, site=site, info=INFO)
    message = str(err.value)
    assert "'vision' needs CUDA >=12.0" in message and "supports CUDA 11.8" in message
    assert "c.LockstepDockerSpawner.host_cuda_version = '11.8'" in message
    assert isinstance(err.value, LockstepError)  # the spawner's 400, the CLI's exit 2


def test_a_new_enough_driver_or_no_requirement_passes():
    site = DockerSite(host_cuda_version="12.4")
    assert prepare.check_host(NEEDS_12, project=VISION, site=site, info=INFO)[1] == "nvidia"
    old = DockerSite(host_cuda_version="11.0")
    plain = GpuRequest(1, "nvidia")
    assert prepare.check_host(plain, project=VISION, site=old, info=INFO)[1] == "nvidia"
    assert prepare.check_host(None, project=VISION, site=old, info=INFO)[1] == "nvidia"


def test_without_a_site_setting_nvidia_smi_is_read(monkeypatch):
    monkeypatch.setattr(prepare, "detect_host_cuda", lambda: CudaVersion(11, 4))
    with pytest.raises(CudaError, match=r"supports CUDA 11.4 \(nvidia-smi on the hub's host\)"):
        prepare.check_host(NEEDS_12, project=VISION, site=DockerSite(), info=INFO)
    monkeypatch.setattr(prepare, "detect_host_cuda", lambda: None)  # unknown: not refused
    assert prepare.check_host(NEEDS_12, project=VISION, site=DockerSite(), info=INFO)


def test_check_cuda_says_whether_it_checked():
    assert check_cuda(NEEDS_12, CudaVersion(12, 0), project="v", source="s") is True
    assert check_cuda(NEEDS_12, None, project="v", source="s") is False
    assert check_cuda(None, CudaVersion(1, 0), project="v", source="s") is False


def test_the_setting_is_a_trait_with_a_checked_value():
    site = site_from_config({"LockstepDockerSpawner": {"host_cuda_version": "12.2"}})
    assert site.host_cuda_version == "12.2"
    with pytest.raises(ValueError, match="not a CUDA version"):
        LockstepDockerTraits(host_cuda_version="twelve")
    with pytest.raises(LockstepError, match="host_cuda_version"):
        site_from_config({"LockstepDockerSpawner": {"host_cuda_version": "twelve"}})
