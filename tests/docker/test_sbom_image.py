"""``lockstep sbom`` of a built image: the lock found by the image's lock-hash label, or the
image's own conda-meta when no lock matches; licenses from the packages' metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spawner.lock.condalock import read_lockfile  # noqa: E402
from tests.docker.lockstep_site import ForecastSite

pytestmark = [pytest.mark.docker, pytest.mark.registry]


@pytest.fixture(scope="module")
def site(locked_project, built_image, registry, docker_client, tmp_path_factory,
         jupyter_channel):
    root = tmp_path_factory.mktemp("sbom-envs")
    lock = locked_project("forecast", ["python=3.11", "numpy"],
                          root=tmp_path_factory.mktemp("sbom-lock")) / "conda-lock.yml"
    site = ForecastSite(root=root, lock=lock, build=built_image(lock.parent), registry=registry,
                        tmp=tmp_path_factory.mktemp("sbom-site"))
    # the lock names the offline test channel's URL; the site calls it conda-forge
    site.config.Lockstep.channel_urls = {"conda-forge": jupyter_channel.as_uri()}
    site.push_build()
    site.lock = lock
    yield site
    site.cleanup(docker_client)


def expected_names(lock: Path) -> set[str]:
    return {p.name for p in read_lockfile(lock).package
            if p.platform == "linux-64" and not p.name.startswith("__")}


def components(path: Path) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(path.read_text())["components"]}


def test_sbom_of_an_image_by_digest_uses_its_lock(site, tmp_path):
    out = tmp_path / "image.cdx.json"
    reference = f"{site.settings.registry}/{site.name}@{site.build.digest}"
    assert site.lockstep("sbom", reference, "-o", str(out)) == 0
    bom = json.loads(out.read_text())
    assert bom["metadata"]["component"]["version"] == site.build.digest
    props = {p["name"]: p["value"] for p in bom["metadata"]["component"]["properties"]}
    assert props["org.lockstep:lockfile"].endswith("conda-lock.yml")
    found = components(out)
    assert set(found) == expected_names(site.lock)
    numpy = found["numpy"]
    assert numpy["purl"].startswith(f"pkg:conda/conda-forge/numpy@{numpy['version']}?build=")
    assert numpy["hashes"][0]["alg"] == "SHA-256"
    licensed = {n for n, c in found.items() if c.get("licenses")}
    assert len(licensed) >= len(found) // 2, sorted(set(found) - licensed)


def test_sbom_of_an_image_without_its_lock_reads_the_image(site, tmp_path):
    (Path(site.settings.environments_dir) / site.name / "conda-lock.yml").rename(
        tmp_path / "away.yml")
    try:
        out = tmp_path / "meta.cdx.json"
        assert site.lockstep("sbom", site.name, "--stage", "dev", "-o", str(out)) == 0
    finally:
        (tmp_path / "away.yml").rename(
            Path(site.settings.environments_dir) / site.name / "conda-lock.yml")
    bom = json.loads(out.read_text())
    props = {p["name"]: p["value"] for p in bom["metadata"]["component"]["properties"]}
    assert props["org.lockstep:lockfile"] == "image conda-meta"
    found = components(out)
    assert set(found) == expected_names(site.lock)
    assert any(c.get("licenses") for c in found.values())
