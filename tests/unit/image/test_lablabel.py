"""The JupyterLab image label: a build writes ``org.lockstep.jupyterlab`` (the locked
version, per platform) into the image config only when the lock installs JupyterLab; the
same inputs still give the same bytes; the build key changes only for locks with Lab."""

from __future__ import annotations

import json
from types import SimpleNamespace

from spawner.image import oci
from spawner.image.assemble import assemble, image_key, lab_versions
from spawner.image.base import BaseImage
from spawner.image.build import Builder
from spawner.labels import JUPYTERLAB

LOCK = "sha256:" + "d" * 64
BASE = BaseImage(
    reference="127.0.0.1:5000/lockstep/base@sha256:" + "c" * 64,
    repository="lockstep/base",
    digest="sha256:" + "c" * 64,
    layers=(),
    diff_ids=(),
    history=(),
    size=0,
)
KEY_ARGS = dict(
    lock_hash=LOCK, base_digest="sha256:" + "4" * 64, layer_limit=20, roots=("python",), epoch=0
)


def pkg(name, version, platform="linux-64", manager="conda"):
    return SimpleNamespace(name=name, version=version, platform=platform, manager=manager)


def test_lab_versions_per_platform_conda_before_pip():
    packages = [
        pkg("jupyterlab", "4.1.0", "linux-64", "pip"),
        pkg("python", "3.11.7"),
        pkg("jupyterlab", "4.2.5"),
        pkg("JupyterLab", "4.0.1", "linux-aarch64", "pip"),
        pkg("jupyterlab-server", "2.27.3", "osx-arm64"),
    ]
    assert lab_versions(packages) == {"linux-64": "4.2.5", "linux-aarch64": "4.0.1"}
    assert lab_versions([pkg("python", "3.11.7"), pkg("jupyter_server", "2.14.2")]) == {}


def test_the_label_is_in_the_config_only_with_lab_and_the_bytes_are_reproducible():
    def config(lab: str) -> bytes:
        runtime = oci.project_runtime(
            project="iris", lock_hash=LOCK, base=BASE.digest, jupyterlab=lab
        )
        return assemble(
            layers=[],
            history=[],
            base=BASE,
            project="iris",
            lock_hash=LOCK,
            epoch=0,
            runtime=runtime,
        )[0]

    with_lab, without = json.loads(config("4.2.5")), json.loads(config(""))
    assert with_lab["config"]["Labels"][JUPYTERLAB] == "4.2.5"
    assert JUPYTERLAB not in without["config"]["Labels"]
    assert config("4.2.5") == config("4.2.5") and config("") == config("")
    # a lock without Lab gives the config it always did (the default runtime's)
    plain = assemble(layers=[], history=[], base=BASE, project="iris", lock_hash=LOCK, epoch=0)
    assert plain[0] == config("")


def test_each_platforms_image_gets_that_platforms_version():
    builder = SimpleNamespace(name="iris", cuda="", lab={"linux-64": "4.2.5"})
    x86 = Builder.runtime(builder, LOCK, BASE, "linux-64")
    arm = Builder.runtime(builder, LOCK, BASE, "linux-aarch64")
    assert x86.labels[JUPYTERLAB] == "4.2.5" and JUPYTERLAB not in arm.labels


def test_the_build_key_changes_only_for_a_lock_with_lab():
    before = image_key(**KEY_ARGS)
    assert image_key(**KEY_ARGS, jupyterlab={}) == before  # an old record stays valid
    lab = image_key(**KEY_ARGS, jupyterlab={"linux-64": "4.2.5"})
    assert lab != before  # an image built before the label is rebuilt, with it
    assert lab == image_key(**KEY_ARGS, jupyterlab={"linux-64": "4.2.5"})
    assert lab != image_key(**KEY_ARGS, jupyterlab={"linux-64": "4.3.0"})
