"""GPU checks on Podman, whose Docker-compatible API cannot be trusted with GPU requests.

The info dicts are trimmed from what Podman 4.3.1's ``GET /info`` returned on Debian 12;
``tests/docker/test_gpu_cdi_podman.py`` shows against a real Podman why every GPU request
is refused there. The exact request bodies per mode are pinned in ``test_render_docker``.
"""

from __future__ import annotations

import pytest

from spawner.docker.gpu import INSTALL_HINT, GpuUnavailable, check_gpu, detect_gpu_mode, is_podman
from spawner.launch.spec import GpuRequest

PODMAN_RUNTIMES = {name: {"path": f"/usr/bin/{name}"}
                   for name in ("crun", "kata", "krun", "runc", "runj", "runsc")}
PODMAN_4 = {"ServerVersion": "4.3.1", "BuildahVersion": "1.28.2", "Rootless": False,
            "Runtimes": PODMAN_RUNTIMES}
PODMAN_5 = {**PODMAN_4, "ServerVersion": "5.4.0", "BuildahVersion": "1.39.0"}
DOCKER_20 = {"ServerVersion": "20.10.24", "Runtimes": {"runc": {}, "runsc": {}}}
ONE = GpuRequest(1, "nvidia")


def test_podman_is_recognised_from_info_or_version():
    assert is_podman(PODMAN_4)
    assert is_podman({}, {"Components": [{"Name": "Podman Engine", "Version": "4.3.1"}]})
    assert not is_podman(DOCKER_20)
    assert not is_podman(DOCKER_20, {"Components": [{"Name": "Engine", "Version": "20.10"}]})


def test_auto_never_picks_a_mode_on_podman():
    # Podman 4.3 accepts an nvidia device request and drops it, so a configured
    # nvidia runtime must not make 'auto' pick 'nvidia' there
    with_nvidia = {**PODMAN_4, "Runtimes": {**PODMAN_RUNTIMES, "nvidia": {}}}
    assert detect_gpu_mode(with_nvidia) == "none"
    assert detect_gpu_mode({**PODMAN_5, "CDISpecDirs": ["/etc/cdi"]}) == "none"


@pytest.mark.parametrize("mode", ["auto", "nvidia", "cdi", "cdi-devices"])
def test_podman_4_refuses_every_gpu_mode(mode):
    with pytest.raises(GpuUnavailable) as err:
        check_gpu(ONE, mode, project="vision", info=PODMAN_4)
    text = str(err.value)
    for part in ("'vision' asks for 1 nvidia GPU(s)", "Podman 4.3.1",
                 "Docker-compatible API cannot give containers GPUs",
                 "podman run --device nvidia.com/gpu=0", "containers/podman#25171",
                 "not verified by lockstep", "nvidia-ctk cdi generate",
                 "gpu_mode = 'cdi'", "without a GPU"):
        assert part in text, part


def test_podman_5_trusts_only_an_explicit_mode():
    for mode in ("auto", "none"):
        with pytest.raises(GpuUnavailable, match=f"Podman 5.4.0 and gpu_mode is '{mode}'"):
            check_gpu(ONE, mode, project="vision", info=PODMAN_5)
    assert check_gpu(ONE, "cdi", project="vision", info=PODMAN_5) == "cdi"


def test_podman_without_gpu_request_passes():
    assert check_gpu(None, "auto", project="iris", info=PODMAN_4) == "none"


def test_docker_refusal_claims_no_podman_path():
    with pytest.raises(GpuUnavailable) as err:
        check_gpu(ONE, "auto", project="vision", info=DOCKER_20)
    assert "runtimes are runc, runsc" in str(err.value)
    assert "Podman" not in str(err.value) and "Podman" not in INSTALL_HINT
