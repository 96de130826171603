"""A lock holding linux-64 and linux-aarch64 builds to one OCI image index.

The project's channel is made here: ``zeta`` for every platform (real archives,
``share/zeta/PLATFORM`` names the subdir, ``tests/channel/platforms.py``) and a noarch
stand-in ``jupyterhub-singleuser`` (a shell script: the test channel has no aarch64
python, and the build refuses an env without a server entry point). The aarch64 image
sits on the arm64 base from ``images/base/packages-arm64.lock`` (real Debian arm64 .debs).
Real rattler, real registry, real ``docker pull``: the index is one digest for both
manifests, stable across builds, and this amd64 host runs the amd64 image; the arm64
image is pulled (not run) and its files read back.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile

import docker
import pytest
from traitlets.config import Config

from spawner.image import oci
from spawner.image.build import build_image
from spawner.image.registry import RegistryClient
from spawner.launch.stages import resolve_stage
from spawner.lock.locking import LockInputs, lock_environment
from spawner.settings import Lockstep
from spawner.verify.check import check_image
from tests.channel.build import index_channel
from tests.channel.conda_pkg import PackageSpec, PkgFile, write_conda
from tests.channel.platforms import zeta_specs
from tests.support.engine import TEST_LABELS

pytestmark = [pytest.mark.docker, pytest.mark.registry]
SPEC = """\
name: twoarch
channels:
  - conda-forge
platforms:
  - linux-64
  - linux-aarch64
dependencies:
  - zeta
  - jupyterhub-singleuser
"""


def _server_stub() -> PackageSpec:
    script = b"#!/bin/sh\necho 'stand-in server for the two-platform build test'\n"
    return PackageSpec(
        name="jupyterhub-singleuser", version="0.0.1", build="stub_0", subdir="noarch",
        noarch="generic", license="MIT", summary="lockstep test stand-in",
        files=(PkgFile("bin/jupyterhub-singleuser", script, mode=0o755),),
    )


@pytest.fixture(scope="module")
def two_platform(tmp_path_factory, registry):
    channel = tmp_path_factory.mktemp("twoarch-channel")
    for spec in [*zeta_specs(), _server_stub()]:
        write_conda(spec, channel)
    index_channel(channel)
    config = Config()
    config.Lockstep.registry = f"{registry}/lockstep"
    config.Lockstep.data_dir = str(tmp_path_factory.mktemp("twoarch-state"))
    environments = tmp_path_factory.mktemp("twoarch-envs")
    config.Lockstep.environments_dir = str(environments)
    config.Lockstep.channel_urls = {"conda-forge": channel.as_uri()}
    settings = Lockstep(config=config)
    folder = environments / "twoarch"
    folder.mkdir()
    (folder / "environment.yml").write_text(SPEC)
    (folder / "project.yaml").write_text("name: twoarch\n")
    inputs = LockInputs(channel_urls={"conda-forge": channel.as_uri()},
                        platforms=("linux-64", "linux-aarch64"), server_packages=(),
                        virtual_packages={k: tuple(v)
                                          for k, v in settings.virtual_packages.items()})
    lock_environment(folder, inputs, progress=None)
    return folder, settings


def _read(docker_client, image: str, path: str) -> bytes:
    container = docker_client.containers.create(image, ["true"], labels=TEST_LABELS)
    try:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.getmembers()[0]
            return tar.extractfile(member).read()
    finally:
        container.remove(force=True)


def test_two_platform_lock_builds_one_index_stable_and_pullable(two_platform, docker_client):
    folder, settings = two_platform
    first = build_image(folder, settings)
    second = build_image(folder, settings)
    assert second.digest == first.digest and second.noop
    assert first.platforms == ("linux-64", "linux-aarch64")
    (folder / "build-record.json").unlink()  # a cold rebuild of the same lock: same bytes
    third = build_image(folder, settings)
    assert third.digest == first.digest

    ref = oci.parse_reference(first.reference)
    with RegistryClient.for_host(ref.host, insecure_registries=settings.insecure_registries) as c:
        data, media_type, digest = c.get_manifest(ref.repository, first.digest)
        assert media_type == oci.MEDIA_INDEX and digest == first.digest
        index = json.loads(data)
        assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
        configs = {}
        for entry in index["manifests"]:
            manifest = json.loads(c.get_manifest(ref.repository, entry["digest"])[0])
            configs[entry["platform"]["architecture"]] = json.loads(
                c.get_blob(ref.repository, manifest["config"]["digest"]))
        tagged = c.head_manifest(ref.repository, settings.stages[0])
    assert tagged == first.digest
    assert {a: cfg["architecture"] for a, cfg in configs.items()} == {"amd64": "amd64",
                                                                     "arm64": "arm64"}
    assert configs["amd64"]["rootfs"]["diff_ids"][0] != configs["arm64"]["rootfs"]["diff_ids"][0]
    staged = resolve_stage(settings, "twoarch", settings.stages[0])  # what the spawner launches
    assert staged.reference == first.reference and staged.lock_hash == first.lock_hash
    check = check_image(settings, first.reference, folder / "conda-lock.yml")  # the amd64 one
    assert check.differences == () and check.same_lock, check.differences

    with contextlib.suppress(docker.errors.ImageNotFound):  # a copy an earlier run left
        docker_client.images.remove(first.reference, force=True)  # would answer the pull
    arm = docker_client.images.pull(first.reference, platform="linux/arm64")
    assert arm.attrs["Architecture"] == "arm64"
    assert _read(docker_client, arm.id, "/opt/env/share/zeta/PLATFORM") == b"linux-aarch64\n"
    docker_client.images.remove(arm.id, force=True)

    docker_client.images.pull(first.reference)
    out = docker_client.containers.run(
        first.reference, ["cat", "/opt/env/share/zeta/PLATFORM"], remove=True,
        labels=TEST_LABELS, entrypoint=[])
    assert out == b"linux-64\n"


def test_two_platform_index_promoted_across_repositories_keeps_its_digest(
    two_platform, docker_client, tmp_path
):
    import copy
    import shutil
    import subprocess

    from spawner.promote import promote

    folder, built_settings = two_platform
    built = build_image(folder, built_settings)  # a no-op when the test above built it
    config = copy.deepcopy(built_settings.config)
    registry = built_settings.registry.split("/", 1)[0]
    config.Lockstep.stage_registries = {"qa": f"{registry}/qa{tmp_path.name[-8:]}"}
    config.Lockstep.data_dir = str(tmp_path / "state")
    settings = Lockstep(config=config)
    record = promote(settings, "twoarch", "qa", user="alice")
    assert record.outcome == "promoted", record.message
    target = resolve_stage(settings, "twoarch", "qa")
    assert target.repository == f"{registry}/qa{tmp_path.name[-8:]}/twoarch"
    assert target.reference == f"{target.repository}@{built.digest}"

    repo = target.repository.split("/", 1)[1]
    with RegistryClient.for_host(registry, insecure_registries=settings.insecure_registries) as c:
        source = oci.parse_reference(built.reference)
        original = c.get_manifest(source.repository, built.digest)
        assert c.get_manifest(repo, built.digest) == original
        assert c.head_manifest(repo, "qa") == built.digest
        for entry in json.loads(original[0])["manifests"]:
            child = json.loads(c.get_manifest(repo, entry["digest"])[0])
            assert all(c.blob_exists(repo, d["digest"])
                       for d in [child["config"], *child["layers"]])

    if shutil.which("skopeo"):
        raw = subprocess.run(
            ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{target.reference}"],
            capture_output=True, check=True, timeout=120).stdout
        assert oci.sha256_digest(raw) == built.digest
    arm = docker_client.images.pull(target.reference, platform="linux/arm64")
    try:
        assert arm.attrs["Architecture"] == "arm64"
        assert _read(docker_client, arm.id, "/opt/env/share/zeta/PLATFORM") == b"linux-aarch64\n"
    finally:
        docker_client.images.remove(arm.id, force=True)
