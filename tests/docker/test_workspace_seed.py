"""A project's new workspace is seeded with its notebooks, once, on a real engine.

``spawner.docker.prepare`` creates the workspace volume on a project's first spawn and its
one ``volume-init`` helper copies ``<notebooks_dir>/<project>/`` into it, owned by uid 1000;
symbolic links in the source are skipped, not followed. A later spawn (another user's: a
new home, so the helper runs again) leaves the workspace as the user left it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import docker
import pytest

from spawner.docker.prepare import prepare
from spawner.docker.site import DockerSite
from spawner.launch.spec import ImageRef, build_launch_spec
from spawner.project import parse_project
from tests.support.engine import remove_project

pytestmark = [pytest.mark.docker, pytest.mark.registry]
NOTEBOOK = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n'


@pytest.fixture(scope="module")
def image(locked_project, built_image, tmp_path_factory) -> ImageRef:
    project_dir = locked_project("seed", ["python=3.11"], root=tmp_path_factory.mktemp("seed"))
    return ImageRef(built_image(project_dir).reference)


def _notebooks(root: Path, name: str) -> Path:
    """``root/<name>/``: a notebook, a sub-folder with a script, and links out of it."""
    folder = root / name
    (folder / "lib").mkdir(parents=True)
    (folder / "train.ipynb").write_text(NOTEBOOK)
    (folder / "lib" / "helpers.py").write_text("ANSWER = 42\n")
    os.symlink("/etc/passwd", folder / "passwd.ipynb")  # in the helper: the image's file
    os.symlink("/etc", folder / "etc")  # a folder link
    os.symlink("../../secret.txt", folder / "lib" / "secret.txt")
    (root.parent / "secret.txt").write_text("host secret\n")
    return folder


def _spec(project, image: ImageRef, user: str):
    return build_launch_spec(
        project=project, image=image, user=user, stage="dev", data_sources={}, env={}
    )


def test_a_new_workspace_gets_the_notebooks_once_and_links_are_not_followed(image, tmp_path):
    api = docker.APIClient(version="auto", timeout=120)
    name = f"sd{uuid.uuid4().hex[:8]}"
    project = parse_project(f"name: {name}\n", source="test")
    site, root = DockerSite(firewall=False), tmp_path / "notebooks"
    _notebooks(root, name)
    reports: list[str] = []
    api.pull(image.reference)
    try:
        first = prepare(
            api,
            _spec(project, image, "alice"),
            project=project,
            site=site,
            pull=False,
            notebooks_dir=str(root),
            report=lambda message, _: reports.append(message),
        )
        assert f"lockstep-ws-{name}" in first.created_volumes
        assert f"Seeded the new workspace with the notebooks of {name}" in reports
        ws = Path(api.inspect_volume(f"lockstep-ws-{name}")["Mountpoint"])
        assert sorted(str(p.relative_to(ws)) for p in ws.rglob("*")) == [
            "lib",
            "lib/helpers.py",
            "train.ipynb",
        ]  # no link, nothing behind one
        for path in (ws, ws / "lib", ws / "train.ipynb", ws / "lib" / "helpers.py"):
            info = path.lstat()
            assert (info.st_uid, info.st_gid) == (1000, 100), path
        assert (ws / "train.ipynb").read_text() == NOTEBOOK
        assert (ws / "lib").stat().st_mode & 0o7777 == 0o2775
        assert (ws / "train.ipynb").stat().st_mode & 0o777 == 0o664
        # the user edits the notebook; the repository gains another one
        (ws / "train.ipynb").write_text("edited by alice\n")
        (root / name / "new.ipynb").write_text(NOTEBOOK)
        second = prepare(
            api,
            _spec(project, image, "bob"),
            project=project,
            site=site,
            pull=False,
            notebooks_dir=str(root),
        )
        assert second.created_volumes == (f"lockstep-home-{name}_bob",)  # the helper ran
        assert (ws / "train.ipynb").read_text() == "edited by alice\n"
        assert not (ws / "new.ipynb").exists()
        assert not api.containers(all=True, filters={"label": f"org.lockstep.project={name}"})
    finally:
        remove_project(api, name)


def test_a_project_without_notebooks_gets_an_empty_workspace(image, tmp_path):
    api = docker.APIClient(version="auto", timeout=120)
    name = f"sd{uuid.uuid4().hex[:8]}"
    project = parse_project(f"name: {name}\n", source="test")
    api.pull(image.reference)
    try:
        ready = prepare(
            api,
            _spec(project, image, "alice"),
            project=project,
            site=DockerSite(firewall=False),
            pull=False,
            notebooks_dir=str(tmp_path / "none"),
        )
        assert f"lockstep-ws-{name}" in ready.created_volumes
        ws = Path(api.inspect_volume(f"lockstep-ws-{name}")["Mountpoint"])
        assert list(ws.iterdir()) == [] and ws.stat().st_uid == 1000
    finally:
        remove_project(api, name)
