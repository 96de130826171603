"""The hub image's runtime (pure), its separate build index, and its two commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spawner import cli
from spawner.image import oci
from spawner.image.base import BaseImage
from spawner.image.build import assemble
from spawner.image.hubimage import HUB_CONFIG, hub_index_key, hub_runtime
from spawner.image.tarlayer import LayerBlob

REPO = Path(__file__).resolve().parents[3]
LOCK = "sha256:" + "a" * 64
BASE_REF = "127.0.0.1:5000/lockstep/base@sha256:" + "b" * 64


def test_hub_runtime_runs_jupyterhub_as_jovyan_not_root():
    runtime = hub_runtime(name="hub", lock_hash=LOCK, base=BASE_REF)
    assert runtime.user == "1000:100" and not runtime.user.startswith("0")
    assert runtime.cmd == ("jupyterhub", "--config", HUB_CONFIG)
    assert HUB_CONFIG == "/usr/local/etc/jupyterhub/jupyterhub_config.py"  # z2jh mounts it
    assert runtime.entrypoint == ("/usr/bin/tini", "-g", "--")
    assert runtime.workdir == "/srv/jupyterhub"
    assert runtime.env["PATH"].startswith("/opt/env/bin:")
    assert runtime.labels == {"org.lockstep.project": "hub", "org.lockstep.lock-hash": LOCK,
                              "org.lockstep.base": BASE_REF}
    assert runtime.exposed_ports == ("8081/tcp",)
    assert hub_runtime(name="hub", lock_hash=LOCK, base=BASE_REF) == runtime  # pure


def test_assemble_with_the_hub_runtime_changes_only_the_config():
    base = BaseImage(reference=BASE_REF, repository="lockstep/base", digest="sha256:" + "b" * 64,
                     layers=(), diff_ids=(), history=(), size=0)
    blob = LayerBlob(digest="sha256:" + "c" * 64, diff_id="sha256:" + "d" * 64, size=3,
                     uncompressed_size=3)
    args = dict(layers=[blob], history=["x"], base=base, project="hub", lock_hash=LOCK, epoch=0)
    project_config, project_manifest = assemble(**args)
    hub_config, hub_manifest = assemble(
        **args, runtime=hub_runtime(name="hub", lock_hash=LOCK, base=BASE_REF))
    assert project_manifest != hub_manifest
    hub = oci.json.loads(hub_config)["config"]
    assert hub["Cmd"] == ["jupyterhub", "--config", HUB_CONFIG]
    assert oci.json.loads(project_config)["config"]["Cmd"] == ["jupyterhub-singleuser"]
    assert assemble(**args) == (project_config, project_manifest)  # default unchanged


def test_hub_builds_never_share_a_project_build_record():
    assert hub_index_key("k" * 64) != "k" * 64
    assert hub_index_key("k" * 64) == hub_index_key("k" * 64)


def test_hub_spec_names_what_a_z2jh_hub_needs():
    spec = yaml.safe_load((REPO / "images" / "hub" / "environment.yml").read_text())
    names = {d.split("=")[0].split(">")[0].split("<")[0] for d in spec["dependencies"]}
    assert {"python", "jupyterhub", "jupyterhub-kubespawner", "lockstep", "oauthenticator",
            "pycurl"} <= names
    assert not {"jupyterhub-singleuser", "ipykernel", "docker", "dockerspawner"} & names


@pytest.mark.parametrize("command", ["build-hub", "prepull"])
def test_commands_are_listed(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    assert "usage: lockstep " + command in capsys.readouterr().out
