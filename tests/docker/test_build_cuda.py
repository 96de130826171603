"""A CUDA project locks its CUDA build and carries its requirement into the image: the
lock solves ``cudatoy`` (needs ``__cuda >=12.0``) because project.yaml states
``gpu: {cuda: ">=12.0"}``; ``lockstep build`` pushes an image whose config has the
``org.lockstep.cuda`` label and a build record with ``cuda``. Also the build's progress: with
``--json`` stdout is one JSON object and stderr has no progress; without, one plain line
per step (not a terminal), with the bytes written and pushed. Real registry, real rattler.
"""

from __future__ import annotations

import json

import pytest

from spawner.cli import main
from spawner.image import oci
from spawner.image.registry import RegistryClient
from spawner.labels import CUDA
from spawner.lock.locking import LockInputs, lock_environment

pytestmark = [pytest.mark.docker, pytest.mark.registry]


@pytest.fixture(scope="module")
def gpu_project(environments_dir, jupyter_channel, lockstep_settings):
    folder = environments_dir / "gpuproj"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "environment.yml").write_text(
        "name: gpuproj\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11\n"
        "  - cudatoy\n")
    (folder / "project.yaml").write_text('name: gpuproj\ngpu: {count: 1, cuda: ">=12.0"}\n')
    inputs = LockInputs(
        channel_urls={"conda-forge": jupyter_channel.as_uri()}, platforms=("linux-64",),
        virtual_packages={k: tuple(v) for k, v in lockstep_settings.virtual_packages.items()},
        server_packages=tuple(lockstep_settings.server_packages))
    lock_environment(folder, inputs, progress=None)
    return folder


def config_file(tmp_path, lockstep_settings):
    config = tmp_path / "lockstep_config.py"
    config.write_text(
        "".join(f"c.Lockstep.{k} = {v!r}\n" for k, v in lockstep_settings.config.Lockstep.items())
    )
    return config


def test_cuda_build_label_record_and_progress_forms(gpu_project, lockstep_settings, capsys,
                                                     tmp_path, registry):
    config = config_file(tmp_path, lockstep_settings)
    assert "cudatoy" in (gpu_project / "conda-lock.yml").read_text()
    assert main(["--config", str(config), "build", str(gpu_project)]) == 0
    out = capsys.readouterr()
    steps = [line.removeprefix("lockstep build: ") for line in out.err.splitlines()]
    assert "\r" not in out.err
    assert any(s.startswith("wrote ") and s.endswith("B)") for s in steps), steps
    assert any(s.startswith("pushed ") and " uploaded" in s for s in steps) or \
        "already in the registry" in out.err, steps
    reference = out.out.strip().splitlines()[-1]
    assert main(["--config", str(config), "build", str(gpu_project), "--json"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == ""
    result = json.loads(quiet.out)  # the whole of stdout
    assert result["reference"] == reference and result["cuda"] == ">=12.0"
    record = json.loads((gpu_project / "build-record.json").read_text())
    assert record["cuda"] == ">=12.0"
    ref = oci.parse_reference(reference)
    client = RegistryClient.for_host(ref.host, insecure_registries=[ref.host])
    try:
        manifest = json.loads(client.get_manifest(ref.repository, result["digest"])[0])
        config_blob = json.loads(client.get_blob(ref.repository, manifest["config"]["digest"]))
    finally:
        client.close()
    assert config_blob["config"]["Labels"][CUDA] == ">=12.0"
