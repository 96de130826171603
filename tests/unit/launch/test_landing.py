"""``landing``: whether an image serves JupyterLab comes from the image's own label
(``org.lockstep.jupyterlab``) whatever lock the project holds now; only an image whose
labels were not read, or that predates the label, falls back to the project-facts rule."""

from __future__ import annotations

import hashlib

from spawner.labels import JUPYTERLAB, LOCK_HASH
from spawner.launch.landing import has_lab, lab_label, server_env
from spawner.launch.projectfacts import facts_of
from spawner.launch.spec import ImageRef
from spawner.project import parse_project

LAB_LOCK = b"""version: 1
metadata: {platforms: [linux-64]}
package:
- {name: python, version: 3.11.7, manager: conda, platform: linux-64}
- {name: jupyterlab, version: 4.2.5, manager: conda, platform: linux-64}
"""
NEWER_LOCK = LAB_LOCK.replace(b"3.11.7", b"3.11.9")
OLD = "sha256:" + hashlib.sha256(LAB_LOCK).hexdigest()
REF = "127.0.0.1:5000/lockstep/p@sha256:" + "e" * 64


def test_the_label_decides_whatever_the_projects_current_lock():
    relocked = facts_of(spec={}, lock_bytes=NEWER_LOCK, record=None)
    assert not relocked.serves_lab(OLD)  # the facts rule alone: not known
    assert has_lab({JUPYTERLAB: "4.2.5", LOCK_HASH: OLD}, relocked, OLD)
    assert not has_lab({LOCK_HASH: OLD}, relocked, OLD)  # no label, not the current lock
    assert not has_lab({JUPYTERLAB: "  "}, relocked, OLD)
    assert lab_label({JUPYTERLAB: " 4.2.5 "}) == "4.2.5" and lab_label(None) == ""


def test_unread_or_unlabelled_images_fall_back_to_the_project_facts_rule():
    current = facts_of(spec={}, lock_bytes=LAB_LOCK, record=None)
    assert has_lab(None, current, OLD) and has_lab({}, current, OLD)
    assert not has_lab(None, current, "sha256:" + "b" * 64)
    no_lab = facts_of(spec={}, lock_bytes=LAB_LOCK.replace(b"jupyterlab", b"numpy"), record=None)
    assert not has_lab(None, no_lab, no_lab.lock_hash)


async def test_server_env_lands_in_lab_for_a_labelled_image_of_an_older_lock(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "environment.yml").write_text("name: p\ndependencies: [python, jupyterlab]\n")
    (folder / "conda-lock.yml").write_bytes(NEWER_LOCK)
    project = parse_project("name: p\n", source="project.yaml")
    image = ImageRef(REF, lock_hash=OLD)
    hub = {"JUPYTERHUB_API_TOKEN": "t"}
    labelled = await server_env(hub, project, image, tmp_path, {JUPYTERLAB: "4.2.5"})
    assert labelled["JUPYTERHUB_ROOT_DIR"] == "/"
    assert labelled["JUPYTERHUB_DEFAULT_URL"] == "/lab/tree/workspace"
    assert await server_env(hub, project, image, tmp_path, {LOCK_HASH: OLD}) == hub
    assert await server_env(hub, project, image, tmp_path) == hub  # unread, older lock
