"""render_kube: LaunchSpec -> pod dict, pinned by golden files and checked strictly.

Regenerate the golden files after an intended change with
``LOCKSTEP_UPDATE_GOLDEN=1 pytest tests/k8s/test_render_kube.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import kubernetes_validate
import pytest

from spawner.kube.render import (
    GpuPlacement,
    KubeOptions,
    KubeRenderError,
    for_server,
    label_safe,
    render_claims,
    render_pod,
)
from spawner.launch.spec import Hardening, LaunchOptions, build_launch_spec
from tests.k8s.k8s_helpers import K8S_VERSIONS, LABEL_VALUE_RE, PROJECTS, fake_image

GOLDEN = Path(__file__).parent / "golden"
OPTIONS = KubeOptions(
    data_volumes={"forecast/sales": {"pvc": "forecast-sales"}},
    workspace_storage_class="nfs-client",
    gpu_placement={"nvidia": GpuPlacement(
        node_selector={"nvidia.com/gpu.present": "true"},
        tolerations=({"key": "dedicated", "operator": "Equal", "value": "gpu",
                      "effect": "NoSchedule"},))},
    image_pull_secrets=("lockstep-registry",),
)


def spec_for(name: str, user: str = "alice", stage: str = "prod", **kw):
    project = PROJECTS[name]
    return for_server(build_launch_spec(  # as the spawner does: the home claim's name
        project=project, image=fake_image(name, stage), user=user, stage=stage,
        data_sources={m.name: f"pvc={m.name}" for m in project.data},
        env={"JUPYTERHUB_API_URL": "http://hub:8081/hub/api"},
        command=("jupyterhub-singleuser",), **kw), "")


def check_golden(name: str, data) -> None:
    path = GOLDEN / name
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if os.environ.get("LOCKSTEP_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"{path} missing; run with LOCKSTEP_UPDATE_GOLDEN=1"
    assert json.loads(path.read_text()) == json.loads(text), f"{name} differs from golden"


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_pod_golden(name):
    pod = render_pod(spec_for(name), OPTIONS, name=f"jupyter-alice-{name}")
    check_golden(f"pod-{name}.json", pod)
    check_golden(f"claims-{name}.json", render_claims(spec_for(name), OPTIONS))


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_pod_and_claims_validate_strictly(name, version):
    spec = spec_for(name)
    for doc in [render_pod(spec, OPTIONS, name="p"), *render_claims(spec, OPTIONS)]:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_hardening(name):
    pod = render_pod(spec_for(name), OPTIONS, name="p")
    psc = pod["spec"]["securityContext"]
    assert (psc["runAsUser"], psc["runAsGroup"], psc["fsGroup"]) == (1000, 100, 100)
    assert psc["runAsNonRoot"] is True and psc["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pod["spec"]["containers"]
    sc = c["securityContext"]
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert pod["spec"]["automountServiceAccountToken"] is False
    tmp = next(v for v in pod["spec"]["volumes"] if v["name"] == "tmp0")
    assert tmp == {"name": "tmp0", "emptyDir": {"sizeLimit": "1Gi"}}
    assert "@sha256:" in c["image"] and c["image"] == fake_image(name, "prod").reference


def test_hardening_follows_the_spec():
    soft = LaunchOptions(hardening=Hardening(read_only_root=False, cap_drop_all=False,
                                             no_new_privileges=False))
    pod = render_pod(spec_for("sandbox", options=soft), OPTIONS, name="p")
    sc = pod["spec"]["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] is False and "capabilities" not in sc
    assert sc["allowPrivilegeEscalation"] is True


def test_data_is_read_only_on_mount_and_source():
    pod = render_pod(spec_for("forecast"), OPTIONS, name="p")
    mount = next(m for m in pod["spec"]["containers"][0]["volumeMounts"]
                 if m["mountPath"] == "/data/sales")
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    assert mount["readOnly"] is True
    assert volume["persistentVolumeClaim"] == {"claimName": "forecast-sales", "readOnly": True}
    nfs = replace(OPTIONS, data_volumes={"sales": {"nfs": {"server": "n", "path": "/x"}}})
    volume = next(v for v in render_pod(spec_for("forecast"), nfs, name="p")["spec"]["volumes"]
                  if v["name"] == "data-sales")
    assert volume["nfs"] == {"server": "n", "path": "/x", "readOnly": True}
    host = replace(OPTIONS, data_volumes={"sales": {"hostPath": "/srv/data/sales"}})
    volume = next(v for v in render_pod(spec_for("forecast"), host, name="p")["spec"]["volumes"]
                  if v["name"] == "data-sales")
    assert volume["hostPath"] == {"path": "/srv/data/sales", "type": "Directory"}


def test_project_specific_data_mapping_wins():
    both = replace(OPTIONS, data_volumes={"sales": {"pvc": "generic"},
                                          "forecast/sales": {"pvc": "specific"}})
    volume = next(v for v in render_pod(spec_for("forecast"), both, name="p")["spec"]["volumes"]
                  if v["name"] == "data-sales")
    assert volume["persistentVolumeClaim"]["claimName"] == "specific"


def test_unmapped_data_names_the_fix():
    with pytest.raises(KubeRenderError, match=r"data_volumes = \{'forecast/sales'"):
        render_pod(spec_for("forecast"), KubeOptions(), name="p")
    with pytest.raises(KubeRenderError, match="exactly one of"):
        render_pod(spec_for("forecast"), KubeOptions(data_volumes={"sales": {"git": "x"}}),
                   name="p")


def test_workspace_is_a_shared_rwx_claim():
    spec = spec_for("forecast")
    pod = render_pod(spec, OPTIONS, name="p")
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "workspace")
    assert volume["persistentVolumeClaim"] == {"claimName": "lockstep-ws-forecast"}
    ws = next(c for c in render_claims(spec, OPTIONS)
              if c["metadata"]["name"] == "lockstep-ws-forecast")
    assert ws["spec"]["accessModes"] == ["ReadWriteMany"]
    assert ws["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert ws["spec"]["storageClassName"] == "nfs-client"
    assert not [v for v in render_pod(spec_for("sandbox"), OPTIONS, name="p")["spec"]["volumes"]
                if v["name"] == "workspace"]


def test_home_pvc_or_emptydir():
    spec = spec_for("sandbox", user="Carol.Smith@example.org")
    claims = render_claims(spec, OPTIONS)
    home = next(m for m in spec.mounts if m.kind == "home")
    assert [c["metadata"]["name"] for c in claims] == [home.source]
    assert claims[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    empty = replace(OPTIONS, home_storage="emptyDir")
    assert render_claims(spec, empty) == []
    volume = next(v for v in render_pod(spec, empty, name="p")["spec"]["volumes"]
                  if v["name"] == "home")
    assert volume == {"name": "home", "emptyDir": {}}


def test_gpu_limits_tolerations_and_node_selector():
    pod = render_pod(spec_for("vision"), OPTIONS, name="p")
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
        pod["spec"]["tolerations"]
    assert {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"} in \
        pod["spec"]["tolerations"]
    no_gpu = render_pod(spec_for("vision", gpu=False), OPTIONS, name="p")
    assert "nvidia.com/gpu" not in no_gpu["spec"]["containers"][0]["resources"]["limits"]
    assert "tolerations" not in no_gpu["spec"]


def test_gpu_placement_prefers_type_then_vendor_then_any():
    spec = spec_for("vision")
    spec = replace(spec, gpu=replace(spec.gpu, vendor="amd", type="mi300"))
    opts = replace(OPTIONS, gpu_placement={
        "": GpuPlacement(node_selector={"gpu": "any"}),
        "amd": GpuPlacement(node_selector={"gpu": "amd"}),
        "mi300": GpuPlacement(node_selector={"gpu": "mi300"})})
    pod = render_pod(spec, opts, name="p")
    assert pod["spec"]["nodeSelector"] == {"gpu": "mi300"}
    assert pod["spec"]["containers"][0]["resources"]["limits"]["amd.com/gpu"] == "1"
    del opts.gpu_placement["mi300"]
    assert render_pod(spec, opts, name="p")["spec"]["nodeSelector"] == {"gpu": "amd"}


def test_requests_and_limits_from_project():
    res = render_pod(spec_for("vision"), OPTIONS, name="p")["spec"]["containers"][0]["resources"]
    assert res["limits"]["cpu"] == "2000m" and res["limits"]["memory"] == "4000000000"
    assert res["requests"] == {"cpu": "2000m", "memory": "4000000000"}
    frac = replace(OPTIONS, cpu_request_fraction=0.25, memory_request_fraction=0.5)
    res = render_pod(spec_for("vision"), frac, name="p")["spec"]["containers"][0]["resources"]
    assert res["requests"] == {"cpu": "500m", "memory": "2000000000"}


# vision asks for 2 CPUs and 4G (4e9 bytes); (site options) -> (limits, requests)
SITE_RESOURCES = [
    ({}, ("2000m", "4000000000"), ("2000m", "4000000000")),
    # the site's limits are smaller: they win, and the requests follow them down
    (dict(cpu_limit=1.0, mem_limit=2 * 10**9), ("1000m", "2000000000"),
     ("1000m", "2000000000")),
    # the site's limits are larger: the project's win
    (dict(cpu_limit=8.0, mem_limit=16 * 10**9), ("2000m", "4000000000"),
     ("2000m", "4000000000")),
    # z2jh's 1G guarantee: the project asks for more (fraction 1.0), so it asks for its own
    (dict(mem_guarantee=10**9), ("2000m", "4000000000"), ("2000m", "4000000000")),
    # the project asks for less than the site guarantees: the site's guarantee
    (dict(cpu_guarantee=0.75, mem_guarantee=10**9, cpu_request_fraction=0.25,
          memory_request_fraction=0.1), ("2000m", "4000000000"), ("750m", "1000000000")),
    # the project asks for more than the site guarantees: the project's request
    (dict(cpu_guarantee=0.25, mem_guarantee=10**8, cpu_request_fraction=0.5,
          memory_request_fraction=0.5), ("2000m", "4000000000"), ("1000m", "2000000000")),
    # a guarantee above the limit is cut to the limit
    (dict(cpu_limit=1.5, cpu_guarantee=3.0, mem_limit=3 * 10**9, mem_guarantee=8 * 10**9),
     ("1500m", "3000000000"), ("1500m", "3000000000")),
]


@pytest.mark.parametrize("site,limits,requests", SITE_RESOURCES)
def test_site_limits_and_guarantees_combine_with_the_project(site, limits, requests):
    """c.Spawner.cpu_limit/mem_limit: the smaller limit wins; cpu_guarantee/mem_guarantee:
    the request unless the project asks for more, never above the limit."""
    pod = render_pod(spec_for("vision"), replace(OPTIONS, **site), name="p")
    res = pod["spec"]["containers"][0]["resources"]
    assert (res["limits"]["cpu"], res["limits"]["memory"]) == limits
    assert (res["requests"]["cpu"], res["requests"]["memory"]) == requests
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    # what the server is told (MEM_LIMIT, jupyter-resource-usage) is what it gets
    assert env["MEM_LIMIT"] == res["limits"]["memory"]
    assert env["MEM_GUARANTEE"] == res["requests"]["memory"]
    assert round(float(env["CPU_LIMIT"]) * 1000) == int(res["limits"]["cpu"][:-1])
    assert round(float(env["CPU_GUARANTEE"]) * 1000) == int(res["requests"]["cpu"][:-1])
    kubernetes_validate.validate(pod, K8S_VERSIONS[-1], strict=True)  # raises if invalid


def test_runtime_class_for_gvisor_and_kata():
    assert render_pod(spec_for("sandbox"), OPTIONS, name="p")["spec"]["runtimeClassName"] \
        == "gvisor"
    assert "runtimeClassName" not in render_pod(spec_for("vision"), OPTIONS, name="p")["spec"]
    kata = replace(spec_for("sandbox"), runtime="kata")
    mapped = replace(OPTIONS, runtime_classes={"kata": "kata-qemu"})
    assert render_pod(kata, mapped, name="p")["spec"]["runtimeClassName"] == "kata-qemu"
    with pytest.raises(KubeRenderError, match="runtime_classes"):
        render_pod(kata, replace(OPTIONS, runtime_classes={}), name="p")


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_labels_are_valid_label_values_and_annotations_keep_full_values(name):
    spec = spec_for(name, user="Very.Long.User.Name+with+plus@some-really-long-domain.example.org")
    pod = render_pod(spec, OPTIONS, name="p")
    for key, value in pod["metadata"]["labels"].items():
        assert len(value) <= 63 and LABEL_VALUE_RE.match(value), (key, value)
    notes = pod["metadata"]["annotations"]
    assert notes["org.lockstep.digest"] == spec.image.digest
    assert notes["org.lockstep.lock-hash"] == spec.image.lock_hash
    assert notes["org.lockstep.user"] == spec.user
    assert pod["metadata"]["labels"]["org.lockstep.digest"] == spec.image.digest[7:70]
    assert pod["metadata"]["labels"]["org.lockstep.project"] == name
    assert pod["metadata"]["labels"]["org.lockstep.managed"] == "true"


def test_engine_labels_merge_but_lockstep_keys_win():
    pod = render_pod(spec_for("sandbox"), OPTIONS, name="p",
                     extra_labels={"component": "singleuser-server",
                                   "org.lockstep.project": "evil"})
    assert pod["metadata"]["labels"]["component"] == "singleuser-server"
    assert pod["metadata"]["labels"]["org.lockstep.project"] == "sandbox"


@pytest.mark.parametrize("value,expected", [
    ("sha256:" + "a" * 64, "a" * 63),
    ("", ""),
    ("dev", "dev"),
    ("-weird value:", "weird-value"),
    ("blake2b:" + "F" * 10, "F" * 10),
])
def test_label_safe(value, expected):
    assert label_safe(value) == expected
    assert LABEL_VALUE_RE.match(label_safe(value))


def test_render_is_pure_and_deterministic():
    spec = spec_for("forecast")
    before = repr(OPTIONS)
    assert render_pod(spec, OPTIONS, name="p") == render_pod(spec, OPTIONS, name="p")
    assert repr(OPTIONS) == before


@pytest.mark.parametrize("name", sorted(PROJECTS))
async def test_pod_survives_the_client_models_unchanged(name):
    """KubeSpawner hands the API a V1Pod: dict -> V1Pod -> JSON must lose nothing."""
    import json as _json

    from kubernetes_asyncio.client import ApiClient

    pod = render_pod(spec_for(name), OPTIONS, name="p")
    async with ApiClient() as client:
        model = client.deserialize(type("R", (), {"data": _json.dumps(pod)})(), "V1Pod")
        assert client.sanitize_for_serialization(model) == pod
