"""Images that share packages share their bytes on pull (real registry, real engine).

Two projects (python + numpy, and python alone) are built with a unique epoch, so no other
image in the engine holds their layers; the engine pulls one, then the other, and
``docker pull`` must report every layer of the common package groups as already there and
fetch only the layers above them.
"""

from __future__ import annotations

import json
import time

import pytest
from traitlets.config import Config

from spawner.image.build import build_image
from spawner.image.registry import RegistryClient
from spawner.settings import Lockstep

pytestmark = [pytest.mark.docker, pytest.mark.registry]


def _pull(docker_client, reference: str) -> dict[str, str]:
    """Short layer id -> last status ``docker pull`` gave it (``Already exists``...)."""
    states = {}
    for event in docker_client.api.pull(reference, stream=True, decode=True):
        if event.get("id") and event.get("status") in ("Already exists", "Pull complete"):
            states[event["id"]] = event["status"]
    return states


def _manifest(reference: str) -> dict:
    host, rest = reference.split("/", 1)
    repo, digest = rest.split("@")
    with RegistryClient.for_host(host, insecure_registries=["127.0.0.1"]) as client:
        return json.loads(client.get_manifest(repo, digest)[0])


def _prefix(a, b) -> int:
    count = 0
    while count < min(len(a), len(b)) and a[count] == b[count]:
        count += 1
    return count


@pytest.fixture(scope="module")
def two_projects(locked_project, lockstep_settings, docker_client, tmp_path_factory):
    """Both builds, made once for the module: the pull test is the only one that pulls
    them, and the rebuild test reads only their results and their project folders."""
    root = tmp_path_factory.mktemp("pullshare")
    epoch = int(time.time())  # unique layers: nothing else in the engine shares them
    wide = locked_project("pullshare-wide", ["python=3.11", "numpy"], root=root)
    narrow = locked_project("pullshare-narrow", ["python=3.11"], root=root)
    results = [build_image(p, lockstep_settings, epoch=epoch) for p in (wide, narrow)]
    yield (*results, epoch, wide)
    for result in results:
        try:
            docker_client.images.remove(result.reference, force=True)
        except Exception:  # noqa: BLE001 - best-effort cleanup of what this test pulled
            pass


def test_second_project_pulls_only_the_layers_that_differ(two_projects, docker_client):
    wide, narrow, _, _ = two_projects
    first = _pull(docker_client, wide.reference)
    assert set(first.values()) == {"Pull complete"}, "a layer of a fresh epoch was present"
    states = _pull(docker_client, narrow.reference)

    layers = _manifest(narrow.reference)["layers"]
    shared = _prefix(wide.layer_digests, narrow.layer_digests)
    short = [d["digest"].split(":")[1][:12] for d in layers]
    assert [states[s] for s in short[:shared]] == ["Already exists"] * shared
    assert [states[s] for s in short[shared:]] == ["Pull complete"] * (len(short) - shared)
    # narrow's packages are wide's less numpy: only its conda-meta layer is new
    assert len(short) - shared == 1
    fetched = sum(d["size"] for d in layers[shared:])
    assert fetched <= 0.15 * sum(d["size"] for d in layers)
    image = docker_client.images.get(narrow.reference)
    assert len(image.attrs["RootFS"]["Layers"]) == len(layers) == narrow.layers


def test_two_builds_give_one_digest_under_the_layer_rule(
    two_projects, lockstep_settings, registry, tmp_path
):
    """A cold rebuild (fresh layer and .pyc caches, no build record) gives the same bytes."""
    wide, _, epoch, wide_dir = two_projects
    other = tmp_path / "again" / "pullshare-wide"
    other.mkdir(parents=True)
    for name in ("environment.yml", "project.yaml", "conda-lock.yml"):
        (other / name).write_bytes((wide_dir / name).read_bytes())
    config = Config()
    config.Lockstep.registry = f"{registry}/lockstep"
    config.Lockstep.cache_dir = str(tmp_path / "cold-cache")
    config.Lockstep.data_dir = str(tmp_path / "state")
    config.Lockstep.channel_urls = dict(lockstep_settings.channel_urls)
    again = build_image(other, Lockstep(config=config), epoch=epoch)
    assert (again.digest, again.layer_digests) == (wide.digest, wide.layer_digests)
    assert again.bytes_uploaded == 0
