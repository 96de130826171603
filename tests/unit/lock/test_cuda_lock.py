"""``spawner.lock.cuda``: where a project states its CUDA, and what the solve is told."""

from __future__ import annotations

import pytest

from spawner.lock.cuda import plan_cuda, unsolvable_hint, with_cuda
from spawner.lock.spec import SpecError

LINUX = (("__unix", "0", "0"), ("__glibc", "2.36", "0"), ("__cuda", "11.2", "0"))


def test_nothing_stated_is_an_empty_plan(tmp_path):
    (tmp_path / "project.yaml").write_text("name: p\ngpu: {count: 1}\n")
    assert plan_cuda(tmp_path, ["linux-64"]).requirement == ""


def test_project_yaml_minimum_for_cuda_platforms_only(tmp_path):
    (tmp_path / "project.yaml").write_text('name: p\ngpu: {cuda: ">=12.2"}\n')
    plan = plan_cuda(tmp_path, ["linux-64", "osx-arm64", "win-64"])
    assert plan.requirement == ">=12.2" and plan.source.endswith("project.yaml: gpu.cuda")
    assert dict(plan.versions) == {"linux-64": "12.2", "win-64": "12.2"}
    assert with_cuda(LINUX, "12.2")[-1] == ("__cuda", "12.2", "0")
    assert [t[0] for t in with_cuda(LINUX, "12.2")].count("__cuda") == 1
    assert with_cuda(LINUX, None) == LINUX


def test_bad_range_in_project_yaml_names_the_file_and_key(tmp_path):
    (tmp_path / "project.yaml").write_text('name: p\ngpu: {cuda: "12"}\n')
    with pytest.raises(SpecError, match=r"project.yaml: gpu.cuda '12' is not a CUDA requirement"):
        plan_cuda(tmp_path, ["linux-64"])


def test_virtual_packages_yml_as_conda_lock_writes_it(tmp_path):
    (tmp_path / "virtual-packages.yml").write_text(
        "subdirs:\n  linux-64:\n    packages:\n      __glibc: '2.17'\n      __cuda: '12.1'\n"
    )
    plan = plan_cuda(tmp_path, ["linux-64", "linux-aarch64"])
    assert plan.requirement == ">=12.1" and dict(plan.versions) == {"linux-64": "12.1"}
    (tmp_path / "project.yaml").write_text('name: p\ngpu: {cuda: ">=12.4"}\n')
    with pytest.raises(SpecError, match="older than .* asks .*make them agree"):
        plan_cuda(tmp_path, ["linux-64"])


def test_hints_only_when_cuda_is_why():
    from spawner.lock.cuda import CudaPlan

    assert unsolvable_hint("beta needs alpha <2", CudaPlan()) == ""
    assert "gpu:\n    cuda:" in unsolvable_hint("__cuda >=12.0, no candidates", CudaPlan())
    stated = CudaPlan(">=11.0", "p/project.yaml: gpu.cuda", {"linux-64": "11.0"})
    assert "raise that minimum" in unsolvable_hint("__cuda >=12", stated, "linux-64")
    assert "# [linux]" in unsolvable_hint("__cuda >=12", stated, "osx-arm64")
