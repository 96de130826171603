"""``lockstep build`` against the real registry and Docker engine.

Projects are locked against the offline test channel (python 3.11, numpy, the jupyter
server stack), built without a daemon, pushed to the session registry (``registry``,
127.0.0.1:5000 unless ``LOCKSTEP_TEST_REGISTRY`` names another) and pulled by digest.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config

from spawner.cli import main
from spawner.errors import LockstepError
from spawner.image import localregistry, oci
from spawner.image.build import build_image
from spawner.image.registry import RegistryClient
from spawner.labels import JUPYTERLAB
from spawner.settings import Lockstep
from tests.support.engine import run_image as _run

pytestmark = [pytest.mark.docker, pytest.mark.registry]


@pytest.fixture(scope="module")
def demo(locked_project):
    return locked_project("demo", ["python=3.11", "numpy"])


@pytest.fixture(scope="module")
def plain(locked_project):
    return locked_project("plain", ["python=3.11"])


def test_image_pulled_by_digest_runs_singleuser_as_jovyan(
    demo, built_image, docker_client, registry
):
    result = built_image(demo)
    assert result.reference.startswith(f"{registry}/lockstep/demo@sha256:")
    docker_client.images.pull(result.reference)
    image = docker_client.images.get(result.reference)
    assert image.labels["org.lockstep.project"] == "demo"
    assert image.labels["org.lockstep.lock-hash"] == result.lock_hash
    assert image.labels["org.lockstep.base"] == result.base.split("@")[1]  # no registry
    lock = yaml.safe_load((demo / "conda-lock.yml").read_text())
    lab = [p["version"] for p in lock["package"]
           if p["name"] == "jupyterlab" and p["platform"] == "linux-64"]
    assert lab and image.labels[JUPYTERLAB] == lab[0]  # the server packages' JupyterLab
    assert image.attrs["Config"]["User"] == "1000:100"
    out = _run(
        docker_client,
        result.reference,
        [
            "bash",
            "-c",
            "id -u; id -g; echo $HOME; jupyterhub-singleuser --version; "
            "python -c 'import numpy, ipykernel; print(numpy.__file__)'",
        ],
    )
    uid, gid, home, version, numpy_file = out.split()[:5]
    assert (uid, gid, home) == ("1000", "100", "/home/jovyan")
    assert version[0].isdigit()
    assert numpy_file.startswith("/opt/env/lib/python3.11/site-packages/numpy/")


def test_build_record_and_stage_tag(demo, built_image, lockstep_settings, registry):
    result = built_image(demo)
    record = json.loads((demo / "build-record.json").read_text())
    assert record["reference"] == result.reference and record["base"] == result.base
    with RegistryClient.for_host(registry, insecure_registries=["127.0.0.1"]) as client:
        assert client.head_manifest("lockstep/demo", lockstep_settings.stages[0]) == result.digest
        manifest = json.loads(client.get_manifest("lockstep/demo", result.digest)[0])
    assert manifest["mediaType"] == oci.MEDIA_MANIFEST
    assert len(manifest["layers"]) == result.layers <= lockstep_settings.layer_limit


def test_noop_rebuild_uploads_nothing(demo, built_image, lockstep_settings):
    first = built_image(demo)
    started = time.perf_counter()
    again = build_image(demo, lockstep_settings)
    elapsed = time.perf_counter() - started
    assert again.noop and again.bytes_uploaded == 0
    assert again.digest == first.digest
    assert elapsed < 5, f"no-op rebuild took {elapsed:.1f}s"


def test_same_lock_from_another_checkout_and_registry_gives_the_same_digest(
    demo, built_image, tmp_path, lockstep_settings
):
    """Fresh caches, another staging folder, another project folder, another site's
    registry (its own base pushed there): the same bytes, so the same digest."""
    first = built_image(demo)
    other = tmp_path / "checkout" / "demo"
    other.mkdir(parents=True)
    for name in ("environment.yml", "project.yaml", "conda-lock.yml"):
        (other / name).write_bytes((demo / name).read_bytes())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{probe.getsockname()[1]}"
    localregistry.start(tmp_path / "registry", addr)
    try:
        config = Config()
        config.Lockstep.registry = f"{addr}/mirror"
        config.Lockstep.cache_dir = str(tmp_path / "cold-cache")
        config.Lockstep.data_dir = str(tmp_path / "state")
        config.Lockstep.channel_urls = dict(lockstep_settings.channel_urls)
        again = build_image(other, Lockstep(config=config))
    finally:
        localregistry.stop(tmp_path / "registry", addr)
    assert again.reference.startswith(f"{addr}/mirror/demo@")
    assert again.base.split("@")[0] != first.base.split("@")[0]  # the base is elsewhere...
    assert again.digest == first.digest  # ...and the image is the same
    assert again.layer_digests == first.layer_digests
    assert again.bytes_uploaded > 0  # it really went to the other registry


def test_projects_share_package_layers(demo, plain, built_image):
    a, b = built_image(demo), built_image(plain)
    shared = set(a.layer_digests) & set(b.layer_digests)
    # base + python and everything both locks hold at the same build
    assert a.layer_digests[0] == b.layer_digests[0]  # the base
    assert len(shared) >= 0.8 * (len(b.layer_digests) - 1)
    assert a.layer_digests[:5] == b.layer_digests[:5]  # python's stack first: same chain


def test_env_without_singleuser_is_refused(locked_project, lockstep_settings):
    bare = locked_project("bare", ["python=3.11"], server_packages=[])
    with pytest.raises(LockstepError, match="jupyterhub-singleuser") as err:
        build_image(bare, lockstep_settings)
    assert "c.Lockstep.server_packages" in str(err.value)
    assert "lockstep lock" in str(err.value)


def test_cli_build_json_and_reference_line(
    demo, built_image, lockstep_settings, capsys, tmp_path, monkeypatch
):
    built_image(demo)
    config = tmp_path / "lockstep_config.py"
    config.write_text(
        "".join(f"c.Lockstep.{k} = {v!r}\n" for k, v in lockstep_settings.config.Lockstep.items())
    )
    assert main(["--config", str(config), "build", str(demo), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"reference", "digest", "layers", "bytes_uploaded", "noop", "base", "lock_hash"} <= set(
        out
    )
    assert out["noop"] is True
    assert main(["--config", str(config), "build", str(demo)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == out["reference"]


def test_registry_command_is_idempotent(registry, capsys, tmp_path):
    config = tmp_path / "lockstep_config.py"
    config.write_text(f"c.Lockstep.data_dir = {str(tmp_path)!r}\n")
    status = ["registry", "status", "--address", registry, "--json"]
    assert main(["--config", str(config), "registry", "start", "--address", registry]) == 0
    assert main(["--config", str(config), *status]) == 0
    state = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert state["running"] is True and state["address"] == registry
    assert Path(state["root"]) == tmp_path / "registry"
