"""Reopening on an exact image, without a hub or an engine: the folder scan (its script run
for real on a temp folder, its hardened container body, its untrusted output), the rules
(whose folders, which digests, which server) and the page's buttons."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from spawner.hubservice import notebooks as nb
from spawner.hubservice import reopen, reopenpage
from spawner.hubservice.images import ImageInfo
from spawner.hubservice.page import sessions_section
from spawner.hubservice.visibility import BadRequest, NotVisible
from spawner.project import Project

D1 = "sha256:" + "a1" * 32
OLD_LOCK = "sha256:" + "0e" * 32  # a lock the project held before its current one
MARK = nb.MARKER


def run_script(root, *locations) -> str:
    argv = [sys.executable, "-I", "-S", "-c", nb.SCRIPT, "5", "200", MARK, str(root), *locations]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def test_the_scan_script_lists_notebooks_with_what_they_record(tmp_path):
    home = tmp_path / "home"
    (home / "deep" / "er").mkdir(parents=True)
    (home / ".hidden").mkdir()
    meta = {"lockstep": {"project": "forecast", "stage": "qa", "digest": D1}}
    (home / "a.ipynb").write_text(json.dumps({"metadata": meta, "cells": []}))
    (home / "deep" / "er" / "b.ipynb").write_text(json.dumps({"metadata": {}}))
    (home / ".hidden" / "c.ipynb").write_text("{}")
    (home / "broken.ipynb").write_text("{not json")
    (home / "big.ipynb").write_text("x" * 300)
    (home / "notes.txt").write_text("no")
    (home / "link.ipynb").symlink_to(home / "a.ipynb")
    found = nb.parse_scan(run_script(tmp_path, "home", "workspace"), ["home", "workspace"])
    by_path = {n.path: n for n in found}
    assert sorted(by_path) == ["a.ipynb", "big.ipynb", "broken.ipynb", "deep/er/b.ipynb"]
    assert (by_path["a.ipynb"].project, by_path["a.ipynb"].digest) == ("forecast", D1)
    assert by_path["deep/er/b.ipynb"].digest == ""
    assert by_path["broken.ipynb"].error and by_path["big.ipynb"].error.startswith("larger")


def test_scan_output_is_untrusted():
    lines = [
        MARK + json.dumps({"location": "home", "path": p, "lockstep": {"digest": d}})
        for p, d in (
            ("../etc/x.ipynb", D1),
            ("/abs.ipynb", D1),
            ("ok.ipynb", "sha256:1"),
            ("fine.ipynb", D1),
        )
    ]
    lines += [
        MARK + json.dumps({"location": "elsewhere", "path": "x.ipynb"}),
        MARK + "{bad",
        "noise",
    ]
    found = nb.parse_scan("\n".join(lines), ["home"])
    assert [(n.path, n.digest) for n in found] == [("fine.ipynb", D1), ("ok.ipynb", "")]


def test_the_scan_container_is_hardened_and_mounts_read_only():
    project = Project.model_validate({"name": "forecast", "members": {"users": ["ann"]}})
    folders = nb.folders(project, "ann")
    assert [(f.location, f.volume) for f in folders] == [
        ("home", "lockstep-home-forecast_ann"),
        ("workspace", "lockstep-ws-forecast"),
    ]
    body = nb.scan_body("r/forecast@" + D1, "forecast", folders)
    host = body["HostConfig"]
    assert (body["User"], body["NetworkDisabled"], host["NetworkMode"]) == (
        "1000:100",
        True,
        "none",
    )
    assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"] and host["PidsLimit"] <= 16
    assert all(m["ReadOnly"] and m["VolumeOptions"]["NoCopy"] for m in host["Mounts"])
    no_ws = Project.model_validate({"name": "s", "workspace": {"enabled": False}})
    assert [f.location for f in nb.folders(no_ws, "ann")] == ["home"]


def test_server_name_and_landing_address():
    assert reopen.server_name("forecast", D1) == "forecast-" + "a1" * 6
    root = "/jhub/user/ann%40x/forecast-a1/"
    assert reopen.landing("/jhub/", "ann@x", "forecast-a1", "a b.ipynb") == root + (
        "lab/tree/a%20b.ipynb"
    )
    assert reopen.landing("/jhub", "ann@x", "forecast-a1", "") == root
    assert reopen.landing("/", "ann", "s", "") == "/user/ann/s/"


def test_a_workspace_notebook_opens_in_lab_only_where_the_spawner_gives_root_slash():
    """``lab_path`` follows ``launch.landing``: with Lab the root is ``/`` and the notebook
    is under the workspace's target; without Lab, or from a home folder, nothing (the
    server's start page) and ``landing_note`` says why."""
    project = Project.model_validate({"name": "forecast"})
    assert reopen.lab_path(project, "workspace", "d/x.ipynb", True) == "workspace/d/x.ipynb"
    assert reopen.lab_path(project, "workspace", "d/x.ipynb", False) == ""
    assert reopen.lab_path(project, "home", "x.ipynb", True) == ""  # another server's home
    assert reopen.lab_path(project, "workspace", "", True) == ""  # a session or a digest
    moved = Project.model_validate({"name": "f", "workspace": {"target": "/workspace/team"}})
    assert reopen.lab_path(moved, "workspace", "x.ipynb", True) == "workspace/team/x.ipynb"
    off = Project.model_validate({"name": "f", "workspace": {"enabled": False}})
    assert reopen.lab_path(off, "workspace", "x.ipynb", True) == ""
    url = reopen.landing(
        "/", "ann", "forecast-a1", reopen.lab_path(project, "workspace", "x.ipynb", True)
    )
    assert url == "/user/ann/forecast-a1/lab/tree/workspace/x.ipynb"

    assert reopen.landing_note(project, "workspace", "x.ipynb", True) == ""
    assert reopen.landing_note(project, "workspace", "", False) == ""
    home = reopen.landing_note(project, "home", "x.ipynb", True)
    assert "home of its own" in home and "copy it into the workspace" in home
    old = reopen.landing_note(project, "workspace", "x.ipynb", False)
    assert "not known to have JupyterLab" in old and "/workspace/x.ipynb" in old


async def test_reopen_lands_in_lab_on_an_older_digest_that_says_it_has_lab(tmp_path):
    """``serves_lab`` reads the image's own JupyterLab label (as the Docker spawner does),
    so a digest of an older lock still opens in Lab; without the label it is the project's
    current lock that decides (``launch.landing.has_lab``)."""
    folder = tmp_path / "forecast"
    folder.mkdir()
    (folder / "environment.yml").write_text("name: forecast\ndependencies: [jupyterlab]\n")
    (folder / "conda-lock.yml").write_text(
        "version: 1\nmetadata: {platforms: [linux-64]}\npackage:\n"
        "- {name: jupyterlab, version: 4.2.5, manager: conda, platform: linux-64}\n"
    )
    infos = {
        "old-labelled": ImageInfo("r@" + D1, D1, OLD_LOCK, "", 0, 0, jupyterlab="4.2.5"),
        "old-unlabelled": ImageInfo("r@" + D1, D1, OLD_LOCK, "", 0, 0),
    }
    source = SimpleNamespace(
        images=SimpleNamespace(info=infos.__getitem__),
        settings=SimpleNamespace(environments_dir=tmp_path),
    )
    assert await reopen.serves_lab(source, "forecast", "old-labelled")
    assert not await reopen.serves_lab(source, "forecast", "old-unlabelled")


def test_only_digests_a_stage_held_may_be_reopened_unless_the_site_allows_any():
    reopen.check_held(D1, "forecast", {D1}, allow_any=False)
    reopen.check_held(D1, "forecast", set(), allow_any=True)
    with pytest.raises(reopen.Refused, match="allow_any_digest") as refused:
        reopen.check_held(D1, "forecast", set(), allow_any=False)
    assert refused.value.status == 403


def test_pick_notebook_takes_the_digest_from_the_notebook_and_names_each_problem():
    found = [
        nb.Notebook("home", "a.ipynb", project="forecast", digest=D1),
        nb.Notebook("home", "old.ipynb"),
        nb.Notebook("home", "moved.ipynb", project="vision", digest=D1),
    ]
    assert reopen.pick_notebook(found, "forecast", "home", "a.ipynb").digest == D1
    with pytest.raises(NotVisible, match="no notebook 'b.ipynb'"):
        reopen.pick_notebook(found, "forecast", "home", "b.ipynb")
    with pytest.raises(NotVisible):
        reopen.pick_notebook(found, "forecast", "workspace", "a.ipynb")
    with pytest.raises(BadRequest, match="does not record the image"):
        reopen.pick_notebook(found, "forecast", "home", "old.ipynb")
    with pytest.raises(BadRequest, match="saved in project 'vision'"):
        reopen.pick_notebook(found, "forecast", "home", "moved.ipynb")


def test_buttons_post_to_reopen_with_the_xsrf_token_and_never_a_digest():
    cell = reopenpage.session_cell("/services/lockstep/", "tok<en")
    rows = [
        {
            "id": 's1"',
            "project": "p",
            "stage": "dev",
            "digest": D1,
            "start": "t",
            "stop": "",
            "running": True,
        }
    ]
    html = sessions_section(rows, None, cell)
    assert 'action="/services/lockstep/api/reopen"' in html
    assert 'name="_xsrf" value="tok&lt;en"' in html and 'value="s1&quot;"' in html
    listing = {
        "project": "forecast",
        "allow_any_digest": False,
        "notebooks": [
            {
                "location": "home",
                "path": "<a>.ipynb",
                "digest": D1,
                "stage": "qa",
                "mtime": 0,
                "held": True,
                "reopen": {"project": "forecast", "location": "home", "path": "<a>.ipynb"},
            },
            {
                "location": "home",
                "path": "x.ipynb",
                "digest": D1,
                "held": False,
                "mtime": 0,
                "reopen": {"project": "forecast", "location": "home", "path": "x.ipynb"},
            },
        ],
    }
    page = reopenpage.notebooks_page("/s/", "ann", listing, "tok")
    assert page.count("<form") == 1 and "&lt;a&gt;.ipynb" in page and "<a>" not in page
    assert 'name="digest"' not in page and "no stage ever held this digest" in page
    assert 'data-location="home" data-path="&lt;a&gt;.ipynb"' in page
    assert reopenpage.WHERE["home"] in page  # a home notebook says its new server's home is apart
    listing["notebooks"][0].update(location="workspace")
    listing["notebooks"][0]["reopen"]["location"] = "workspace"
    page = reopenpage.notebooks_page("/s/", "ann", listing, "tok")
    assert reopenpage.WHERE["workspace"] in page and reopenpage.WHERE["home"] not in page


def test_only_the_users_own_login_token_may_start_servers_never_the_service():
    from traitlets.config import Config

    from spawner.hubservice.config import SERVICE_SCOPES, service_config

    c = Config()
    entry = service_config(c, port=10101)
    assert entry["oauth_client_allowed_scopes"] == ["servers!user"]
    assert not any(s.startswith(("servers", "admin")) for s in SERVICE_SCOPES)
