"""Host capability checks (GPU modes, isolation runtimes) and the daemon.json edit."""

from __future__ import annotations

import json

import pytest

from spawner.docker.gpu import GpuUnavailable, check_gpu, detect_gpu_mode
from spawner.docker.runtimes import (
    RuntimeUnavailable,
    engine_runtime,
    merge_runtime,
    register_runtime,
)
from spawner.launch.spec import GpuRequest

DOCKER_20 = {"Runtimes": {"runc": {"path": "runc"}, "io.containerd.runc.v2": {}}}
WITH_NVIDIA = {"Runtimes": {"runc": {}, "nvidia": {"path": "nvidia-container-runtime"}}}
DOCKER_27_CDI = {"Runtimes": {"runc": {}}, "CDISpecDirs": ["/etc/cdi", "/var/run/cdi"]}
PODMAN = {"Components": [{"Name": "Podman Engine", "Version": "4.3.1"}]}


@pytest.mark.parametrize(("info", "version", "mode"), [
    (DOCKER_20, None, "none"),
    (WITH_NVIDIA, None, "nvidia"),
    (DOCKER_27_CDI, None, "cdi"),
    ({**DOCKER_27_CDI, **WITH_NVIDIA}, None, "nvidia"),
    ({"Runtimes": {"crun": {}}}, PODMAN, "none"),  # see tests/unit/test_gpu.py
])
def test_detect_gpu_mode(info, version, mode):
    assert detect_gpu_mode(info, version) == mode


def test_gpu_refused_on_gpu_less_host_with_what_to_install():
    with pytest.raises(GpuUnavailable) as err:
        check_gpu(GpuRequest(1, "nvidia"), "auto", project="vision", info=DOCKER_20)
    text = str(err.value)
    for part in ("'vision'", "cannot give containers GPUs", "NVIDIA Container Toolkit",
                 "nvidia-ctk cdi generate", "without a GPU"):
        assert part in text


def test_gpu_checks():
    assert check_gpu(None, "auto", project="p", info=DOCKER_20) == "none"
    assert check_gpu(GpuRequest(1, "nvidia"), "auto", project="p", info=WITH_NVIDIA) == "nvidia"
    # an explicit mode is trusted (the toolkit hook works without a registered runtime)
    assert check_gpu(GpuRequest(1, "nvidia"), "cdi", project="p", info=DOCKER_20) == "cdi"


def test_runtime_mapping():
    info = {"Runtimes": {"runc": {}, "runsc": {}}}
    assert engine_runtime("runc", project="p", info=info) == ""
    assert engine_runtime("gvisor", project="p", info=info) == "runsc"
    assert engine_runtime("kata", project="p", info={"Runtimes": {"kata-qemu": {}}},
                          names={"kata": "kata-qemu"}) == "kata-qemu"


def test_missing_runtime_refused_with_fix():
    with pytest.raises(RuntimeUnavailable) as err:
        engine_runtime("kata", project="secure", info=DOCKER_20)
    assert "'kata-runtime'" in str(err.value) and "daemon.json" in str(err.value)
    with pytest.raises(RuntimeUnavailable, match="python -m spawner.docker.runtimes runsc"):
        engine_runtime("gvisor", project="secure", info=DOCKER_20)


def test_merge_runtime_keeps_other_keys():
    current = {"log-level": "warn", "runtimes": {"kata-runtime": {"path": "/k"}}}
    merged = merge_runtime(current, "runsc", "/usr/bin/runsc", ["--network=host"])
    assert merged == {"log-level": "warn", "runtimes": {
        "kata-runtime": {"path": "/k"},
        "runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=host"]}}}
    assert current["runtimes"] == {"kata-runtime": {"path": "/k"}}


def test_register_runtime_writes_once(tmp_path):
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"debug": true}')
    assert register_runtime("runsc", "/usr/bin/runsc", ["--network=host"],
                            daemon_json=str(daemon), reload=False)
    assert json.loads(daemon.read_text())["runtimes"]["runsc"]["path"] == "/usr/bin/runsc"
    assert json.loads(daemon.read_text())["debug"] is True
    assert not register_runtime("runsc", "/usr/bin/runsc", ["--network=host"],
                                daemon_json=str(daemon), reload=False)
