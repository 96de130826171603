"""lockstep's Jupyter hook: what a save writes into a notebook, the files a build adds to
the env, and that they are the same bytes every build (no daemon, no Jupyter needed)."""

from __future__ import annotations

import ast
import json

from spawner.image import jupyterhook, notebookhook
from spawner.image.assemble import image_key
from spawner.image.tarlayer import write_layer

DIGEST = "sha256:" + "1" * 64
ENV = {
    "LOCKSTEP_PROJECT": "forecast",
    "LOCKSTEP_STAGE": "qa",
    "LOCKSTEP_IMAGE": f"127.0.0.1:5000/lockstep/forecast@{DIGEST}",
    "LOCKSTEP_LOCK_HASH": "sha256:" + "2" * 64,
}


def test_a_notebook_save_records_project_stage_digest_and_lock_hash():
    model = {
        "type": "notebook",
        "content": {"metadata": {"kernelspec": {"name": "py"}}, "cells": []},
    }
    assert notebookhook.stamp(model, ENV) is True
    meta = model["content"]["metadata"]
    assert meta["kernelspec"] == {"name": "py"}
    assert meta["lockstep"] == {
        "project": "forecast",
        "stage": "qa",
        "digest": DIGEST,
        "image": ENV["LOCKSTEP_IMAGE"],
        "lock_hash": ENV["LOCKSTEP_LOCK_HASH"],
    }


def test_files_and_servers_without_lockstep_variables_are_left_alone():
    text = {"type": "file", "content": "x"}
    assert notebookhook.stamp(text, ENV) is False and text == {"type": "file", "content": "x"}
    model = {"type": "notebook", "content": {"metadata": {}}}
    assert notebookhook.stamp(model, {}) is False and model["content"]["metadata"] == {}
    unpinned = {**ENV, "LOCKSTEP_IMAGE": "127.0.0.1:5000/lockstep/forecast:dev"}
    assert notebookhook.stamp(model, unpinned) is False
    assert notebookhook.stamp({"type": "notebook"}, ENV) is False  # a save without content


def test_the_extension_registers_its_pre_save_hook():
    class Manager:
        hooks: list = []

        def register_pre_save_hook(self, hook):
            self.hooks.append(hook)

    class Log:
        def info(self, *args):
            pass

    class App:
        contents_manager, log = Manager(), Log()

    assert notebookhook._jupyter_server_extension_points() == [{"module": jupyterhook.MODULE}]
    notebookhook._load_jupyter_server_extension(App())
    assert App.contents_manager.hooks == [notebookhook.pre_save_hook]


def test_the_build_adds_the_config_and_the_module_below_opt_env():
    entries = {e.path: e for e in jupyterhook.hook_entries("3.11")}
    config = entries["opt/env/etc/jupyter/jupyter_server_config.d/lockstep.json"]
    assert json.loads(config.data) == {
        "ServerApp": {"jpserver_extensions": {"lockstep_notebook_meta": True}}
    }
    module = entries["opt/env/lib/python3.11/site-packages/lockstep_notebook_meta.py"]
    assert module.data == jupyterhook.SOURCE
    imported = {
        n.name
        for node in ast.walk(ast.parse(module.data))
        if isinstance(node, ast.Import)
        for n in node.names
    } | {
        node.module for node in ast.walk(ast.parse(module.data)) if isinstance(node, ast.ImportFrom)
    }
    assert imported == {"os", "re"}  # standard library only: it runs in any project's python
    assert all(e.mode == 0o644 and (e.uid, e.gid) == (0, 0) for e in entries.values())
    assert jupyterhook.hook_entries(None) == []


def test_two_builds_write_the_same_layer_bytes(tmp_path):
    first = write_layer(jupyterhook.hook_entries("3.11"), tmp_path / "a.tar.gz")
    second = write_layer(jupyterhook.hook_entries("3.11"), tmp_path / "b.tar.gz")
    assert (first.diff_id, first.digest) == (second.diff_id, second.digest)
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()


def test_the_hook_is_part_of_the_image_key(monkeypatch):
    args = dict(
        lock_hash="sha256:" + "3" * 64,
        base_digest="sha256:" + "4" * 64,
        layer_limit=20,
        roots=("python",),
        epoch=0,
    )
    before = image_key(**args)
    monkeypatch.setattr("spawner.image.assemble.HOOK", "another")
    assert image_key(**args) != before
