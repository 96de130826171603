"""A new workspace is seeded with the project's notebooks by the volume helper (pure parts).

The helper's body binds the notebooks folder read-only and non-recursively and copies it
before the chown, keeping its hardening; the folder is found only where it is a real folder;
only a workspace volume created now is seeded. The copy itself runs on a real engine in
``tests/docker/test_workspace_seed.py``.
"""

from __future__ import annotations

import os

import pytest

from spawner.docker import prepare as prep
from spawner.docker.prepare import volumes_init_body
from spawner.docker.seed import SEED_MOUNT, seed_source
from spawner.docker.site import DockerSite, site_from_config
from spawner.launch.spec import ImageRef, build_launch_spec
from spawner.project import parse_project

IMAGE = "img@sha256:" + "a" * 64
VOLUMES = {"home-v": "/home/jovyan", "ws-v": "/workspace"}


def test_the_seed_is_bound_read_only_and_copied_before_the_chown():
    body = volumes_init_body(IMAGE, VOLUMES, {"k": "v"}, seed=("/srv/nb/forecast", "/workspace"))
    host = body["HostConfig"]
    binds = [m for m in host["Mounts"] if m["Type"] == "bind"]
    assert binds == [
        {
            "Type": "bind",
            "Source": "/srv/nb/forecast",
            "Target": SEED_MOUNT,
            "ReadOnly": True,
            "BindOptions": {"NonRecursive": True},
        }
    ]
    code = body["Entrypoint"][-1]
    assert code.startswith("TARGET = '/workspace'\n")
    assert "os.walk(src, followlinks=False)" in code and "os.O_EXCL" in code
    assert "os.O_NOFOLLOW" in code and "os.fchown(out, uid, gid)" in code
    assert code.index("os.walk(") < code.index("for t in ['/home/jovyan', '/workspace']")
    compile(code, "volume-init", "exec")  # the helper's python -c can run it
    # the hardening is the same as without a seed
    plain = volumes_init_body(IMAGE, VOLUMES, {"k": "v"})["HostConfig"]
    assert {k: v for k, v in host.items() if k != "Mounts"} == {
        k: v for k, v in plain.items() if k != "Mounts"
    }
    assert host["CapAdd"] == ["CHOWN", "FOWNER"] and host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    assert not [m for m in plain["Mounts"] if m["Type"] == "bind"]


def test_the_source_is_a_real_project_folder_or_nothing(tmp_path):
    (tmp_path / "forecast").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "linked")
    (tmp_path / "afile").write_text("x")
    assert seed_source(str(tmp_path), "forecast") == str(tmp_path.resolve() / "forecast")
    assert seed_source(str(tmp_path), "linked") == ""  # a link is not followed
    assert seed_source(str(tmp_path), "afile") == ""
    assert seed_source(str(tmp_path), "missing") == ""  # nothing to seed, no error
    assert seed_source("", "forecast") == ""
    os.symlink(tmp_path, tmp_path.parent / f"{tmp_path.name}-site")  # the site's own link
    assert seed_source(str(tmp_path.parent / f"{tmp_path.name}-site"), "forecast") == str(
        tmp_path.resolve() / "forecast"
    )


def test_seeding_is_on_by_default_and_the_site_may_turn_it_off():
    assert DockerSite().seed_workspace is True
    assert site_from_config({}).seed_workspace is True
    off = site_from_config({"LockstepDockerSpawner": {"seed_workspace": False}})
    assert off.seed_workspace is False


class _Volumes:
    """The engine's volumes, as far as ``ensure_volumes`` asks; records each helper."""

    def __init__(self, there=()):
        self.there, self.helpers = set(there), []

    def install(self, monkeypatch):
        monkeypatch.setattr(
            prep.engine,
            "existing_volumes",
            lambda api, names: {n for n in names if n in self.there},
        )
        monkeypatch.setattr(
            prep.engine, "create_volume", lambda api, name, labels: self.there.add(name)
        )
        monkeypatch.setattr(
            prep,
            "init_volumes",
            lambda api, volumes, labels, **kw: self.helpers.append((sorted(volumes), kw["seed"])),
        )


@pytest.fixture
def spec():
    project = parse_project("name: forecast\n", source="test")
    return build_launch_spec(
        project=project, image=ImageRef(IMAGE), user="alice", stage="dev", data_sources={}, env={}
    )


def test_only_a_workspace_created_now_is_seeded(monkeypatch, spec):
    fake = _Volumes()
    fake.install(monkeypatch)
    reports = []
    prep.ensure_volumes(
        None,
        spec,
        chown=True,
        notebooks="/srv/nb/forecast",
        report=lambda message, _: reports.append(message),
    )
    assert fake.helpers == [
        (
            ["lockstep-home-forecast_alice", "lockstep-ws-forecast"],
            ("/srv/nb/forecast", "/workspace"),
        )
    ]
    assert "Seeded the new workspace with the notebooks of forecast" in reports
    # another user's first spawn: a new home, the workspace exists: no seed
    other = _Volumes(there={"lockstep-ws-forecast"})
    other.install(monkeypatch)
    prep.ensure_volumes(
        None, spec, chown=True, notebooks="/srv/nb/forecast", report=lambda *_: None
    )
    assert other.helpers == [(["lockstep-home-forecast_alice"], None)]
    # no notebooks folder: the helper only chowns
    bare = _Volumes()
    bare.install(monkeypatch)
    prep.ensure_volumes(None, spec, chown=True, notebooks="", report=lambda *_: None)
    assert bare.helpers == [(["lockstep-home-forecast_alice", "lockstep-ws-forecast"], None)]
