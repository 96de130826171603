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


