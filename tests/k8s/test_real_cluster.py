"""Against a real cluster, when KUBECONFIG points at one: the API server itself (schema,
admission, Pod Security "restricted") accepts the chart and a spawned pod, by server-side
dry run, so nothing is created. Skipped, with the reason, otherwise."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from spawner.kube.render import KubeOptions, render_pod
from spawner.launch.spec import build_launch_spec
from tests.k8s.k8s_helpers import CHART, PROJECTS, fake_image, get_helm

pytestmark = pytest.mark.k8s


@pytest.fixture(scope="module")
def kubectl() -> str:
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("no cluster: KUBECONFIG is not set")
    binary = str(Path(get_helm("4")).parent / "kubectl")
    proc = subprocess.run([binary, "version", "--request-timeout=5s"], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"KUBECONFIG={os.environ['KUBECONFIG']} does not reach a cluster: "
                    f"{proc.stderr.strip()[-200:]}")
    return binary


def dry_run(kubectl: str, text: str, namespace: str) -> None:
    proc = subprocess.run([kubectl, "apply", "--dry-run=server", "-n", namespace, "-f", "-"],
                          input=text, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_chart_is_accepted_by_the_api_server(kubectl):
    namespace = os.environ.get("LOCKSTEP_TEST_NAMESPACE", "default")
    proc = subprocess.run([get_helm("4"), "template", "r", str(CHART), "-n", namespace,
                           "-f", str(CHART / "examples" / "default.yaml")],
                          capture_output=True, text=True, check=True)
    dry_run(kubectl, proc.stdout, namespace)


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_pods_are_accepted_by_the_api_server(kubectl, name):
    """In a namespace labelled pod-security.kubernetes.io/enforce=restricted (set
    LOCKSTEP_TEST_NAMESPACE to one) this also proves the pod meets "restricted"."""
    namespace = os.environ.get("LOCKSTEP_TEST_NAMESPACE", "default")
    project = PROJECTS[name]
    spec = build_launch_spec(project=project, image=fake_image(name), user="alice",
                             stage="dev", data_sources={m.name: "pvc" for m in project.data})
    data = {m.name: {"pvc": f"data-{m.name}"} for m in project.data}
    pod = render_pod(spec, KubeOptions(data_volumes=data, runtime_classes={}), name="ls-dry-run")
    if spec.runtime != "runc":
        pytest.skip(f"{name}: isolation {spec.runtime} needs a RuntimeClass in the cluster")
    dry_run(kubectl, yaml.safe_dump(pod), namespace)
