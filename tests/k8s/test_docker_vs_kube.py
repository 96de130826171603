"""One launch spec, two engines: the Docker create body and the pod agree on image digest,
user, mounts (read-only where they must be), limits and labels. Pinned by a golden file
holding the engine-neutral summary both renderings reduce to."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from spawner.docker.render import DockerOptions, render_container
from spawner.kube.render import KubeOptions, label_safe, render_pod
from spawner.launch.spec import build_launch_spec, parse_bytes
from tests.k8s.k8s_helpers import PROJECTS, fake_image

DOCKER = DockerOptions(gpu_mode="nvidia")  # the NVIDIA Container Toolkit hook
GOLDEN = Path(__file__).parent / "golden" / "agreement-forecast.json"


def spec_for(name: str):
    project = PROJECTS[name]
    return build_launch_spec(
        project=project, image=fake_image(name, "prod"), user="alice", stage="prod",
        data_sources={m.name: f"/srv/data/{m.name}" for m in project.data},
        command=("jupyterhub-singleuser",))


def docker_summary(body: dict) -> dict:
    host = body["HostConfig"]
    uid, gid = body["User"].split(":")
    return {
        "image": body["Image"],
        "user": [int(uid), int(gid)],
        "mounts": sorted([m["Target"], bool(m.get("ReadOnly", False))] for m in host["Mounts"]),
        "memory": host["Memory"],
        "millicpu": host["NanoCpus"] // 10**6,
        "labels": body["Labels"],
        "read_only_root": host["ReadonlyRootfs"],
        "cap_drop": host["CapDrop"],
        "no_new_privileges": "no-new-privileges:true" in host["SecurityOpt"],
        "gpus": sum(r.get("Count", 0) for r in host.get("DeviceRequests") or []),
    }


def pod_summary(pod: dict) -> dict:
    (c,) = pod["spec"]["containers"]
    sc = c["securityContext"]
    return {
        "image": c["image"],
        "user": [sc["runAsUser"], sc["runAsGroup"]],
        "mounts": sorted([m["mountPath"], bool(m.get("readOnly", False))]
                         for m in c["volumeMounts"]),
        "memory": parse_bytes(c["resources"]["limits"]["memory"]),
        "millicpu": int(c["resources"]["limits"]["cpu"].removesuffix("m")),
        # labels as Docker has them: the pod's annotations hold the full values its
        # labels had to shorten
        "labels": {k: pod["metadata"]["annotations"].get(k, v)
                   for k, v in pod["metadata"]["labels"].items() if k.startswith("org.lockstep.")},
        "read_only_root": sc["readOnlyRootFilesystem"],
        "cap_drop": sc["capabilities"]["drop"],
        "no_new_privileges": sc["allowPrivilegeEscalation"] is False,
        "gpus": int(c["resources"]["limits"].get("nvidia.com/gpu", 0)),
    }


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_docker_and_kube_agree(name):
    spec = spec_for(name)
    body = render_container(spec, DOCKER)
    pod = render_pod(spec, KubeOptions(data_volumes={"sales": {"pvc": "sales"}}), name="p")
    assert docker_summary(body) == pod_summary(pod)
    # the pod's labels are the label-safe form of the very values Docker labels carry
    assert pod["metadata"]["labels"]["org.lockstep.digest"] == \
        label_safe(body["Labels"]["org.lockstep.digest"])
    data_targets = {m.target for m in PROJECTS[name].data}
    for target, read_only in pod_summary(pod)["mounts"]:
        assert read_only == (target in data_targets)


def test_agreement_golden():
    spec = spec_for("forecast")
    summary = docker_summary(render_container(spec, DOCKER))
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    if os.environ.get("LOCKSTEP_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert json.loads(GOLDEN.read_text()) == summary
