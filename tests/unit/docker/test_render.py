"""Golden tests: the exact Docker Engine create body for a LaunchSpec, per mode.

Regenerate after an intended change with ``LOCKSTEP_UPDATE_GOLDEN=1 pytest tests/unit``
and review the diff of ``tests/unit/golden/docker/*.json``.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from spawner.docker.gpu import GpuUnavailable, render_gpu
from spawner.docker.render import DockerOptions, render_container
from spawner.launch.spec import GpuRequest, Hardening, ImageRef, LaunchOptions, build_launch_spec
from spawner.project import parse_project

GOLDEN = Path(__file__).parents[1] / "golden" / "docker"
DIGEST = "sha256:" + "ab" * 32
IMAGE = ImageRef(f"127.0.0.1:5000/lockstep/iris@{DIGEST}", lock_hash="f" * 64)

IRIS = """
name: iris
members: {users: [alice], groups: [iris-team]}
data:
  - {name: iris, source: iris, target: /data/iris}
resources: {cpu: 1.5, memory: 2Gi, pids: 512}
"""
GPU = IRIS.replace("name: iris", "name: iris").rstrip() + "\ngpu: {count: 2}\n"
GVISOR = IRIS.rstrip() + "\nisolation: gvisor\n"


def spec_for(text: str, **kw):
    project = parse_project(text, source="project.yaml")
    return build_launch_spec(
        project=project, image=IMAGE, user="alice", stage="dev",
        data_sources={"iris": "/srv/data/iris"},
        env={"JUPYTERHUB_API_TOKEN": "tok", "JUPYTERHUB_USER": "alice"},
        command=("/opt/env/bin/jupyterhub-singleuser",), **kw,
    )


CASES = {
    "runc": (IRIS, {}, DockerOptions()),
    "gvisor": (GVISOR, {}, DockerOptions(runtime="runsc")),
    "gpu-nvidia": (GPU, {}, DockerOptions(gpu_mode="nvidia")),
    "gpu-cdi": (GPU, {}, DockerOptions(gpu_mode="cdi")),
    "gpu-cdi-devices": (GPU, {}, DockerOptions(gpu_mode="cdi-devices")),
    "softened": (IRIS, {"options": LaunchOptions(hardening=Hardening(
        read_only_root=False, cap_drop_all=False, no_new_privileges=False,
        seccomp_default=False, run_as_non_root=False))}, DockerOptions(volume_nocopy=True)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_body(case):
    text, spec_kw, options = CASES[case]
    body = render_container(spec_for(text, **spec_kw), options)
    path = GOLDEN / f"{case}.json"
    rendered = json.dumps(body, indent=2, sort_keys=True) + "\n"
    if os.environ.get("LOCKSTEP_UPDATE_GOLDEN"):
        path.write_text(rendered)
    assert rendered == path.read_text(), f"{path} differs; see module docstring to regenerate"


def test_hardened_defaults():
    body = render_container(spec_for(IRIS))
    host = body["HostConfig"]
    assert body["User"] == "1000:100"
    assert body["Image"] == IMAGE.reference
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"]  # engine default seccomp
    assert host["ReadonlyRootfs"] is True and host["Privileged"] is False
    assert host["Memory"] == host["MemorySwap"] == 2 * 2**30
    assert host["NanoCpus"] == 1_500_000_000 and host["PidsLimit"] == 512
    assert host["NetworkMode"] == "lockstep-iris"
    assert not any(v == "host" for v in host.values() if isinstance(v, str))
    assert "Runtime" not in host and "DeviceRequests" not in host
    mounts = {m["Target"]: m for m in host["Mounts"]}
    assert mounts["/data/iris"] == {"Type": "bind", "Source": "/srv/data/iris",
                                    "Target": "/data/iris", "ReadOnly": True,
                                    "BindOptions": {"Propagation": "rprivate"}}
    assert mounts["/workspace"]["Source"] == "lockstep-ws-iris"
    assert mounts["/home/jovyan"]["Source"] == "lockstep-home-iris_alice"
    assert mounts["/tmp"]["Type"] == "tmpfs"
    assert not any("docker.sock" in json.dumps(m) for m in host["Mounts"])


def test_seccomp_only_unconfined_when_turned_off():
    soft = spec_for(IRIS, options=LaunchOptions(hardening=Hardening(seccomp_default=False)))
    assert "seccomp=unconfined" in render_container(soft)["HostConfig"]["SecurityOpt"]
    assert "seccomp=unconfined" not in json.dumps(render_container(spec_for(IRIS)))


def test_render_is_pure_and_deterministic():
    spec = spec_for(GPU)
    before = copy.deepcopy(spec)
    first = render_container(spec, DockerOptions(gpu_mode="cdi"))
    assert render_container(spec, DockerOptions(gpu_mode="cdi")) == first
    assert spec == before
    assert list(first) == sorted(first)


def test_gpu_requests_exact():
    req = GpuRequest(2, "nvidia")
    assert render_gpu(req, "nvidia") == {"DeviceRequests": [
        {"Driver": "nvidia", "Count": 2, "Capabilities": [["gpu"]]}]}
    assert render_gpu(req, "cdi") == {"DeviceRequests": [
        {"Driver": "cdi", "DeviceIDs": ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]}]}
    assert render_gpu(req, "cdi-devices") == {"Devices": [
        {"PathOnHost": "nvidia.com/gpu=0", "PathInContainer": "", "CgroupPermissions": "rwm"},
        {"PathOnHost": "nvidia.com/gpu=1", "PathInContainer": "", "CgroupPermissions": "rwm"}]}
    assert render_gpu(None, "nvidia") == {}
    with pytest.raises(GpuUnavailable):
        render_gpu(req, "none")
    with pytest.raises(GpuUnavailable):
        render_gpu(GpuRequest(1, "amd"), "nvidia")


def test_no_gpu_when_user_declines():
    body = render_container(spec_for(GPU, gpu=False), DockerOptions(gpu_mode="nvidia"))
    assert "DeviceRequests" not in body["HostConfig"]
