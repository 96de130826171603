"""Fixtures for the Kubernetes layer (helpers live in k8s_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio.config import kube_config

from tests.k8s.k8s_helpers import HELM_MAJORS, get_helm


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory) -> Path:
    """A kubeconfig KubeSpawner can load at construction (nothing listens there)."""
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": "http://127.0.0.1:9"}}],
        "contexts": [{"name": "fake",
                      "context": {"cluster": "fake", "user": "fake", "namespace": "lockstep"}}],
        "users": [{"name": "fake", "user": {"token": "fake"}}],
    }))
    return path


@pytest.fixture(autouse=True)
def _fake_kubeconfig(request, kubeconfig, monkeypatch):
    if request.node.get_closest_marker("k8s") is None:  # a real cluster keeps its KUBECONFIG
        # kubernetes_asyncio reads $KUBECONFIG once, at import: point its default there too
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))


@pytest.fixture(scope="session", params=HELM_MAJORS, ids=lambda m: f"helm{m}")
def helm(request) -> str:
    return get_helm(request.param)


@pytest.fixture(scope="session")
def helm3() -> str:
    return get_helm("3")




@pytest.fixture(scope="session")
def hub_role(helm3) -> list[dict]:
    """The rules of the hub Role the chart renders (default example values)."""
    from tests.k8s.k8s_helpers import CHART, find, helm_template

    docs = helm_template(helm3, CHART / "examples" / "default.yaml")
    return find(docs, "Role", "-hub")["rules"]


@pytest.fixture
async def api(kmock, hub_role):
    """The fake API (``tests.k8s.kmock_api.ApiServer``; mark the module with
    ``pytest.mark.kmock(cls=ApiServer)``): strict validation and the hub Role enforced."""
    from kubespawner import KubeSpawner

    for plural in ("pods", "events", "persistentvolumeclaims"):
        kmock.resources[f"v1/{plural}"] = {}
    kmock.role_rules = hub_role
    kmock.violations = []
    yield kmock
    await KubeSpawner._stop_all_reflectors()
    assert kmock.violations == [], "a real API server would have refused these requests"


@pytest.fixture
async def kubelet(api):
    """Marks every new pod Running and ready, as a node would once the image runs."""
    import asyncio
    from contextlib import suppress

    from tests.k8s.kmock_api import RUNNING, patch_pod, pods

    seen: set[str] = set()

    async def loop():
        while True:
            for name, pod in pods(api).items():
                uid = pod["metadata"]["uid"]
                if uid not in seen and pod["status"]["phase"] == "Pending":
                    seen.add(uid)
                    await patch_pod(api, name, RUNNING)
            await asyncio.sleep(0.05)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
