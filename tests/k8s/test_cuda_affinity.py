"""A project's CUDA requirement becomes required node affinity on GPU feature discovery's
labels (pure renderer; ``pod-vision.json`` is the golden pod that shows it)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from spawner.kube.podtraits import PodTraits, apply_traits
from spawner.kube.render import KubeOptions, render_pod
from spawner.launch.spec import build_launch_spec
from tests.k8s.k8s_helpers import PROJECTS, fake_image

GOLDEN = Path(__file__).parent / "golden" / "pod-vision.json"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"


def vision_spec(gpu: bool | None = None, cuda: str | None = None):
    project = PROJECTS["vision"]
    if cuda is not None:
        project = project.model_copy(update={"gpu": project.gpu.model_copy(update={"cuda": cuda})})
    return build_launch_spec(project=project, image=fake_image("vision"), user="carol",
                             stage="dev", data_sources={}, gpu=gpu)


def terms(pod: dict) -> list[dict]:
    return pod["spec"]["affinity"]["nodeAffinity"][REQUIRED]["nodeSelectorTerms"]


def test_the_golden_vision_pod_requires_a_cuda_12_driver():
    assert PROJECTS["vision"].gpu.cuda == ">=12.0"
    golden = json.loads(GOLDEN.read_text())
    assert terms(golden) == [{"matchExpressions": [
        {"key": "nvidia.com/cuda.runtime.major", "operator": "Gt", "values": ["11"]}]}]


def test_no_gpu_no_requirement_or_site_off_means_no_affinity():
    assert "affinity" not in render_pod(vision_spec(gpu=False), name="p")["spec"]
    assert "affinity" not in render_pod(vision_spec(cuda=""), name="p")["spec"]
    off = KubeOptions(cuda_affinity=False)
    assert "affinity" not in render_pod(vision_spec(), off, name="p")["spec"]


def test_a_minor_version_is_two_terms():
    pod = render_pod(vision_spec(cuda=">=12.4"), name="p")
    assert [[(e["key"].rsplit(".", 1)[1], e["operator"], e["values"][0])
             for e in t["matchExpressions"]] for t in terms(pod)] == [
        [("major", "Gt", "12")], [("major", "In", "12"), ("minor", "Gt", "3")]]


def test_site_node_affinity_traits_are_joined_not_replacing_the_cuda_terms():
    pod = render_pod(vision_spec(cuda=">=12.4"), name="p")
    zone = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
    preferred = {"weight": 1, "preference": zone}
    merged = apply_traits(pod, PodTraits(node_affinity_required=(zone,),
                                         node_affinity_preferred=(preferred,)))
    got = terms(merged)
    assert len(got) == 2 and all(t["matchExpressions"][0]["key"] == "zone" for t in got)
    assert [len(t["matchExpressions"]) for t in got] == [2, 3]
    assert merged["spec"]["affinity"]["nodeAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"] == [preferred]
    assert terms(pod) == terms(render_pod(vision_spec(cuda=">=12.4"), name="p"))  # not mutated
    plain = apply_traits(render_pod(replace(vision_spec(), gpu=None), name="p"),
                         PodTraits(node_affinity_required=(zone,)))
    assert terms(plain) == [zone]
