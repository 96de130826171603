"""A hub as Zero to JupyterHub runs it: JupyterHub 5.x with ``pip install lockstep[kube]`` only.

The Kubernetes spawner's tests run inside that second venv (``tests/packaging/venvs.py``)
and must pass there, while docker, dockerspawner, py-rattler and conda-lock are absent:
the spawner, its launch core and the hub config must neither import them nor need a
JupyterHub 6 API. The first run builds the venv (about a minute, needs the package index);
later runs reuse it.
"""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.k8s.k8s_helpers import HELM_MAJORS, get_helm
from tests.packaging.venvs import (
    CONSTRAINTS,
    KUBE_TEST_TOOLS,
    ROOT,
    kube_only_venv,
    layer_constraints,
    pinned_name,
)

KUBE_TESTS = ("tests/k8s/test_spawner_kmock.py", "tests/k8s/test_render_kube.py",
              "tests/k8s/test_hub_config.py")
NOT_FOR_KUBE = ("docker", "dockerspawner", "rattler", "conda_lock")
# What the Kubernetes hub imports: the spawner, and what it imports later, on a spawn.
KUBE_PATH = ("spawner.kube.spawner", "spawner.launch.stages", "spawner.launch.pointercache",
             "spawner.launch.datamounts")


@pytest.fixture(scope="session")
def kube_venv() -> Path:
    return kube_only_venv()


@pytest.fixture(scope="session")
def helm_fetched() -> None:
    """Fetch the helm binaries with the full venv's pip (the kube-only venv has none), so
    the chart tests run there rather than skip."""
    for major in HELM_MAJORS:
        get_helm(major)


def _python(venv: Path, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in ``venv`` from the repo root, so the working tree's ``spawner`` is
    the one imported (as pytest's ``pythonpath = ["."]`` does)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_docker_and_build_libraries_are_absent(kube_venv):
    for module in NOT_FOR_KUBE:
        proc = _python(kube_venv, f"import {module}")
        assert proc.returncode != 0, f"{module} is importable in the lockstep[kube] venv"
        assert "ModuleNotFoundError" in proc.stderr, proc.stderr


def test_kube_path_imports_on_jupyterhub5_from_the_working_tree(kube_venv):
    """The Kubernetes hub's modules, those a spawn imports later included, import on
    JupyterHub 5.x without docker or the solver; and the code imported is the working
    tree's, not the copy installed when the cached venv was built."""
    proc = _python(kube_venv, "import importlib, json, jupyterhub, spawner\n"
                              f"for m in {KUBE_PATH!r}: importlib.import_module(m)\n"
                              "print(json.dumps([jupyterhub.__version__, spawner.__file__]))")
    assert proc.returncode == 0, proc.stderr[-3000:]
    version, where = json.loads(proc.stdout.splitlines()[-1])
    assert version.startswith("5."), version
    assert Path(where).resolve() == (ROOT / "spawner" / "__init__.py").resolve()


def test_every_package_in_the_venv_is_pinned(kube_venv):
    """A reproducible second venv: each installed package has its pin in the layered
    constraints (add a missing one to constraints-jupyterhub5.txt)."""
    pins = {pinned_name(line) for line in (kube_venv / "constraints.txt").read_text().splitlines()}
    installed = {pinned_name(line) for line in (kube_venv / "freeze.txt").read_text().splitlines()}
    assert installed - {None} - pins == set()
    assert {"jupyterhub", "jupyterhub-kubespawner", *KUBE_TEST_TOOLS} <= installed


def test_kube_spawner_tests_pass_on_jupyterhub5(kube_venv, helm_fetched, tmp_path):
    """The Kubernetes spawner's own tests (kmock API server, strict pod validation, the
    chart's hub config loaded into a JupyterHub 5 app) pass in the kube-only venv."""
    report = tmp_path / "junit.xml"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    proc = subprocess.run(
        [str(kube_venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path / 'inner'}", f"--junitxml={report}", *KUBE_TESTS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    cases = ET.parse(report).getroot().iter("testcase")
    outcome: dict[str, list[str]] = {}
    for case in cases:
        kind = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        outcome.setdefault(kind, []).append(f"{case.get('classname')}::{case.get('name')}")
    assert outcome.get("failure", []) + outcome.get("error", []) == []
    skipped_kmock = [t for t in outcome.get("skipped", []) if "test_spawner_kmock" in t]
    assert skipped_kmock == [], skipped_kmock
    for module in KUBE_TESTS:  # each file ran, and ran something (not an empty collection)
        stem = Path(module).stem
        assert any(stem in t for t in outcome.get("passed", [])), f"nothing passed in {module}"


def test_layer_constraints_replaces_same_package_only():
    base = "# pins\njupyterhub==6.1.1\nJupyterHub-KubeSpawner==7.1.0\nPyYAML==6.0.3\n"
    overlay = "# jh5\njupyterhub_kubespawner==7.0.0\njupyterhub==5.5.0\nnew-one==1.0\n"
    assert layer_constraints(base, overlay).splitlines() == [
        "jupyterhub==5.5.0", "jupyterhub_kubespawner==7.0.0", "new-one==1.0", "PyYAML==6.0.3"]


def test_constraints_pin_every_package_once():
    names = [pinned_name(line) for line in CONSTRAINTS.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert None not in names, "constraints.txt: every line is a comment or name==version"
    assert len(names) == len(set(names))
