"""``spawner.cuda``: CUDA requirements, host versions, node affinity (pure, no GPU needed)."""

from __future__ import annotations

import subprocess

import pytest

from spawner import cuda
from spawner.cuda import CudaError, CudaVersion


@pytest.mark.parametrize(
    ("text", "minimum"), [(">=12.0", "12.0"), (">=12", "12.0"), (" >= 11.8 ", "11.8")]
)
def test_a_minimum_is_read(text, minimum):
    requirement = cuda.parse_requirement(text)
    assert str(requirement.minimum) == minimum and str(requirement) == f">={minimum}"
    assert requirement.virtual_package() == ("__cuda", minimum, "0")


@pytest.mark.parametrize("text", ["12.0", "<13", ">=12.0,<13", "==12.2", ">=twelve", "", 12])
def test_anything_but_a_minimum_is_refused_with_the_form(text):
    with pytest.raises(CudaError) as err:
        cuda.parse_requirement(text, where="gpu.cuda")
    assert "gpu.cuda" in str(err.value) and "'>=MAJOR.MINOR'" in str(err.value)
    assert isinstance(err.value, ValueError)  # pydantic reports it on the key


def test_driver_check_compares_versions_not_strings():
    need = cuda.parse_requirement(">=12.2")
    for ok in ("12.2", "12.10", "13.0"):
        cuda.check_driver(need, cuda.parse_version(ok, where="t"), project="v", source="s")
    with pytest.raises(CudaError) as err:
        cuda.check_driver(need, CudaVersion(11, 8), project="vision", source="site setting")
    message = str(err.value)
    assert "'vision' needs CUDA >=12.2" in message
    assert "supports CUDA 11.8 (site setting)" in message
    assert "no container was created" in message


def test_node_terms_for_a_whole_major():
    assert cuda.node_selector_terms(cuda.parse_requirement(">=12.0")) == [
        {"matchExpressions": [
            {"key": "nvidia.com/cuda.runtime.major", "operator": "Gt", "values": ["11"]}]}
    ]


def test_node_terms_for_a_minor_are_a_newer_major_or_the_same_major_and_a_newer_minor():
    terms = cuda.node_selector_terms(cuda.parse_requirement(">=12.2"))
    assert terms == [
        {"matchExpressions": [
            {"key": "nvidia.com/cuda.runtime.major", "operator": "Gt", "values": ["12"]}]},
        {"matchExpressions": [
            {"key": "nvidia.com/cuda.runtime.major", "operator": "In", "values": ["12"]},
            {"key": "nvidia.com/cuda.runtime.minor", "operator": "Gt", "values": ["1"]}]},
    ]

    def matches(major: int, minor: int) -> bool:  # how the scheduler reads the terms
        labels = {"nvidia.com/cuda.runtime.major": major, "nvidia.com/cuda.runtime.minor": minor}

        def holds(e):
            value = labels[e["key"]]
            return value > int(e["values"][0]) if e["operator"] == "Gt" else \
                str(value) in e["values"]
        return any(all(holds(e) for e in t["matchExpressions"]) for t in terms)

    assert [matches(*v) for v in [(11, 9), (12, 1), (12, 2), (12, 9), (13, 0)]] == [
        False, False, True, True, True]


SMI = """\
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+
"""


def test_host_version_from_nvidia_smi():
    assert cuda.version_from_smi(SMI) == CudaVersion(12, 4)
    assert cuda.version_from_smi("no header") is None

    def run(args, **kw):
        return subprocess.CompletedProcess(args, 0, SMI, "")

    def fails(args, **kw):
        raise FileNotFoundError("nvidia-smi")

    assert cuda.detect_host_cuda(run) == CudaVersion(12, 4)
    assert cuda.detect_host_cuda(fails) is None
