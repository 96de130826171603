"""The notebooks gate for real: a built image (python 3.11 + numpy + the server packages)
runs the repository's notebooks headless, hardened and offline, before a pointer moves.

One image is built (``built_image``) and its dev tag copied to each project's repository;
every project's lock is that same file, so the verify gate passes for all of them.

The projects are the repository's (``environments/<p>/project.yaml``, ``notebooks/<p>/``)
under names of this module's own (``<p>-<uuid>``, ``own``): nothing the gates make or
remove can meet the demo's ``forecast``, ``sandbox`` and ``vision`` (``tests/e2e/test_demo.py``
runs beside this file, in the other engine lane of ``tests/conftest.py``).
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path

import pytest
from traitlets.config import Config

from spawner.image.registry import RegistryClient, copy_image
from spawner.launch.stages import resolve_stage
from spawner.promote import promote
from spawner.settings import Lockstep

pytestmark = [pytest.mark.docker, pytest.mark.registry]
REPO = Path(__file__).resolve().parents[2]
SUFFIX = uuid.uuid4().hex[:8]


def own(project: str) -> str:
    """This module's name for the repository's example project ``project``."""
    return f"{project}-{SUFFIX}"


@pytest.fixture(scope="module")
def image(locked_project, built_image, docker_client, tmp_path_factory):
    """The environments folder of this module's projects, the lock every one of them gets
    and its image (built as ``forecast``: the other engine tests' build of the same lock)."""
    lock_dir = locked_project(
        "forecast", ["python=3.11", "numpy"], root=tmp_path_factory.mktemp("nbgate-lock")
    )
    root = tmp_path_factory.mktemp("nbgate-envs")
    return root, lock_dir / "conda-lock.yml", built_image(lock_dir)


def grant_data(data_root: Path, project: str, text: str) -> str:
    """``project.yaml`` text with its data sources moved to ``own(project)``'s folder of
    ``data_root``, where links (a curator's grant) lead to the repository's ``data/``."""
    granted = data_root / own(project)
    granted.mkdir(parents=True)
    for shared in (REPO / "data" / project).glob("*"):
        (granted / shared.name).symlink_to(shared.resolve())
    return re.sub(rf"^(\s+source: ){project}/", rf"\g<1>{own(project)}/", text, flags=re.M)


def site(
    root: Path,
    lock: Path,
    registry: str,
    tmp_path: Path,
    project: str,
    notebooks: dict[str, str],
    isolation: str | None = None,
) -> Lockstep:
    """Settings + the folder of example project ``project``, named ``own(project)``, whose
    dev tag is the built image."""
    project_dir = root / own(project)
    project_dir.mkdir(exist_ok=True)
    shutil.copy(lock, project_dir / "conda-lock.yml")
    text = (REPO / "environments" / project / "project.yaml").read_text()
    text, renamed = re.subn(rf"^name: {project}$", f"name: {own(project)}", text, flags=re.M)
    assert renamed == 1, f"environments/{project}/project.yaml has no line 'name: {project}'"
    text = grant_data(tmp_path / "data", project, text)
    if isolation:
        text = text.replace("isolation: gvisor", f"isolation: {isolation}")
    (project_dir / "project.yaml").write_text(text)
    folder = tmp_path / "notebooks" / own(project)
    folder.mkdir(parents=True)
    for name, source in notebooks.items():
        (folder / name).write_text(source)
    config = Config()
    config.Lockstep.registry = f"{registry}/nbgate-{uuid.uuid4().hex[:10]}"
    config.Lockstep.environments_dir = str(root)
    config.Lockstep.notebooks_dir = str(tmp_path / "notebooks")
    config.Lockstep.data_dir = str(tmp_path / "state")
    config.Lockstep.data_roots = [str(tmp_path / "data"), str(REPO / "data")]
    return Lockstep(config=config)


def tag_dev(settings: Lockstep, build, project: str, tmp_path: Path) -> None:
    """Put the built image in this test's own namespace as ``own(project)``, tagged dev
    (blobs are mounted)."""
    host, source = build.reference.split("@")[0].split("/", 1)
    target = settings.registry.split("/", 1)[1] + "/" + own(project)
    with RegistryClient.for_host(host, insecure_registries=("127.0.0.1",)) as client:
        copy_image(client, source, client, target, build.digest, tags=("dev",), workdir=tmp_path)


def repo_notebooks(project: str) -> dict[str, str]:
    return {p.name: p.read_text() for p in (REPO / "notebooks" / project).glob("*.ipynb")}


def failing_notebook() -> str:
    return json.dumps(
        {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": "a",
                    "metadata": {},
                    "outputs": [],
                    "source": ["print('fine so far')"],
                },
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": "b",
                    "metadata": {},
                    "outputs": [],
                    "source": ["raise ValueError('sales data is stale')"],
                },
            ],
            "metadata": {
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


def test_a_notebook_that_raises_blocks_the_promotion(image, registry, tmp_path):
    root, lock, build = image
    notebooks = {**repo_notebooks("forecast"), "zz-stale.ipynb": failing_notebook()}
    settings = site(root, lock, registry, tmp_path, "forecast", notebooks)
    tag_dev(settings, build, "forecast", tmp_path)
    record = promote(settings, own("forecast"), "qa", user="alice")
    assert record.outcome == "refused"
    gates = {g.name: g for g in record.gates}
    assert gates["verify"].status == "passed"
    assert gates["notebooks"].status == "failed"
    assert "1 of 2 notebook(s) failed;" in record.message
    assert "zz-stale.ipynb failed: cell 2: ValueError: sales data is stale" in record.message
    assert record.message.endswith("; no stage was changed")
    assert resolve_stage(settings, own("forecast"), "qa") is None


@pytest.mark.parametrize("project", ["forecast", "vision", "sandbox"])
def test_the_repository_notebooks_pass_in_the_image(
    image, registry, tmp_path, docker_client, project
):
    root, lock, build = image
    isolation = None
    if project == "sandbox" and "runsc" not in (docker_client.info().get("Runtimes") or {}):
        isolation = "runc"  # the sandbox's checks hold under runc too
    settings = site(root, lock, registry, tmp_path, project, repo_notebooks(project), isolation)
    tag_dev(settings, build, project, tmp_path)
    record = promote(settings, own(project), "qa", user="alice")
    assert record.outcome == "promoted", record.message
    assert [(g.name, g.status) for g in record.gates] == [
        ("verify", "passed"),
        ("notebooks", "passed"),
    ]
    assert "1 notebook(s) ran:" in record.gates[1].message
    assert resolve_stage(settings, own(project), "qa").digest == build.digest
