"""``projectfacts``: the spec's direct dependencies with their locked versions, the lock
hash, JupyterLab, the build time; re-read only when a file changed; never raising.
``landing``: JupyterLab on the workspace only for an image known to have it.
``buildrecords.built_at``: a rebuild of the same digest keeps its first build time."""

from __future__ import annotations

import hashlib
import json
import os

from spawner.image.buildrecords import built_at
from spawner.launch.landing import landing_env, with_landing
from spawner.launch.projectfacts import read_facts, spec_dependencies
from spawner.project import parse_project

SPEC = """name: demo
channels: [conda-forge]
dependencies:
  - python=3.11
  - conda-forge::numpy>=2
  - jupyterlab  # comment
  - pip
  - pip:
      - Requests_Toolbelt==1.0
"""
LOCK = """version: 1
metadata: {platforms: [linux-64, osx-arm64]}
package:
- {name: python, version: 3.11.7, manager: conda, platform: linux-64}
- {name: python, version: 3.12.0, manager: conda, platform: osx-arm64}
- {name: numpy, version: 2.4.6, manager: conda, platform: linux-64}
- {name: jupyterlab, version: 4.6.6, manager: conda, platform: linux-64}
- {name: requests-toolbelt, version: 1.0.0, manager: pip, platform: linux-64}
"""
DIGEST = "sha256:" + "1" * 64


def write(folder, spec=SPEC, lock=LOCK, record=None):
    folder.mkdir(exist_ok=True)
    (folder / "environment.yml").write_text(spec)
    (folder / "conda-lock.yml").write_text(lock)
    if record is not None:
        (folder / "build-record.json").write_text(json.dumps(record))
    return folder


def test_direct_dependencies_with_their_locked_versions(tmp_path):
    folder = write(tmp_path / "demo", record={"digest": DIGEST, "built_at": "2026-01-05T14:03:00Z"})
    facts = read_facts(folder)
    assert [(p.name, p.version, p.manager) for p in facts.packages] == [
        ("python", "3.11.7", "conda"),
        ("numpy", "2.4.6", "conda"),
        ("jupyterlab", "4.6.6", "conda"),
        ("requests_toolbelt", "1.0.0", "pip"),
    ]
    lock_hash = "sha256:" + hashlib.sha256(LOCK.encode()).hexdigest()
    assert facts.lock_hash == lock_hash and facts.is_lock_of(lock_hash)
    assert facts.serves_lab(lock_hash) and not facts.serves_lab("sha256:" + "b" * 64)
    assert not facts.serves_lab("")
    assert facts.built == {DIGEST: "2026-01-05T14:03:00Z"} and facts.problem == ""


def test_a_changed_lock_is_read_again_and_an_unchanged_one_is_not(tmp_path):
    folder = write(tmp_path / "demo")
    first = read_facts(folder)
    assert read_facts(folder) is first
    write(folder, lock=LOCK.replace("jupyterlab, version: 4.6.6", "other, version: 1"))
    os.utime(folder / "conda-lock.yml", ns=(1, 1))
    again = read_facts(folder)
    assert again is not first and "jupyterlab" not in again.locked


def test_missing_or_broken_files_give_empty_facts_and_say_why(tmp_path):
    missing = read_facts(tmp_path / "nothing")
    assert missing.packages == () and "environment.yml is missing" in missing.problem
    broken = read_facts(write(tmp_path / "broken", lock="package: [\n"))
    assert broken.packages == () and "conda-lock.yml" in broken.problem
    assert not broken.serves_lab(broken.lock_hash)


def test_spec_dependencies_skip_pip_itself_and_keep_order():
    assert spec_dependencies({"dependencies": ["b", "a", "b", "pip", {"pip": ["c"]}]}) == [
        ("b", "conda"),
        ("a", "conda"),
        ("c", "pip"),
    ]


def test_lab_lands_on_the_workspace_with_root_at_slash():
    project = parse_project("name: p\n", source="project.yaml")
    assert landing_env(project, has_lab=True) == {
        "JUPYTERHUB_ROOT_DIR": "/",
        "JUPYTERHUB_DEFAULT_URL": "/lab/tree/workspace",
    }
    assert landing_env(project, has_lab=False) == {}
    no_ws = parse_project("name: p\nworkspace: {enabled: false}\n", source="project.yaml")
    assert landing_env(no_ws, has_lab=True)["JUPYTERHUB_DEFAULT_URL"] == "/lab/tree/home/jovyan"


def test_the_sites_default_url_or_notebook_dir_wins_whole():
    project = parse_project("name: p\n", source="project.yaml")
    hub = {"JUPYTERHUB_API_TOKEN": "t", "JUPYTERHUB_DEFAULT_URL": "/tree"}
    assert with_landing(hub, project, has_lab=True) == hub
    assert with_landing({"A": "1"}, project, has_lab=True)["JUPYTERHUB_ROOT_DIR"] == "/"


def test_a_rebuild_of_the_same_digest_keeps_its_first_build_time(tmp_path):
    record = tmp_path / "build-record.json"
    assert built_at(record, DIGEST, "NOW") == "NOW"
    record.write_text(json.dumps({"digest": DIGEST, "built_at": "THEN"}))
    assert built_at(record, DIGEST, "NOW") == "THEN"
    assert built_at(record, "sha256:" + "2" * 64, "NOW") == "NOW"
