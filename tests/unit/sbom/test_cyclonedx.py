"""CycloneDX 1.5 SBOMs from locks: purls, hashes, licenses, determinism, schema validity."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from spawner import cli
from spawner.commands.sbom import cached_licenses, packages_from_meta
from spawner.lock.condalock import read_lockfile
from spawner.lock.package import LockedPackage
from spawner.sbom.cyclonedx import (
    Subject,
    build_sbom,
    channel_name,
    dumps,
    license_entry,
    packages_from_lock,
    purl,
)

ROOT = Path(__file__).resolve().parents[3]
REAL_LOCKS = sorted((ROOT.parent / "shared" / "real-world-locks").glob("**/conda-lock.yml"))
CF = "https://conda.anaconda.org/conda-forge"
NUMPY = LockedPackage(
    name="numpy", version="2.4.6", manager="conda", platform="linux-64",
    url=f"{CF}/linux-64/numpy-2.4.6-py311h_lockstep_0.conda", sha256="ab" * 32, md5="cd" * 16,
    dependencies=("python", "python_abi"),
)
PYTHON = LockedPackage(
    name="python", version="3.11.7", manager="conda", platform="linux-64",
    url=f"{CF}/linux-64/python-3.11.7-h_lockstep_0.conda", sha256="ef" * 32,
)
SUBJECT = Subject(name="forecast", version="sha256:" + "0" * 64)


@functools.cache
def validator():
    """A Draft 7 validator of the CycloneDX 1.5 schema (with its SPDX and JSF schemas), from
    the schema files cyclonedx-python-lib ships (its own validator is far slower). Only the
    schema tests need it; they skip, saying so, where it is not installed."""
    import cyclonedx.schema as schema
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    res = Path(schema.__file__).parent / "_res"
    names = ("bom-1.5.SNAPSHOT.schema.json", "spdx.SNAPSHOT.schema.json",
             "jsf-0.82.SNAPSHOT.schema.json")
    docs = {n: json.loads((res / n).read_text()) for n in names}
    pairs = []
    for name, doc in docs.items():
        resource = Resource.from_contents(doc, default_specification=DRAFT7)
        pairs += [(doc["$id"], resource), (f"http://cyclonedx.org/schema/{name}", resource)]
    return jsonschema.Draft7Validator(docs[names[0]], registry=Registry().with_resources(pairs))


def errors(bom: dict) -> list[str]:
    return [e.message for e in validator().iter_errors(bom)]


def test_conda_purl_names_channel_build_and_subdir():
    assert purl(NUMPY) == ("pkg:conda/conda-forge/numpy@2.4.6"
                           "?build=py311h_lockstep_0&subdir=linux-64")
    assert NUMPY.build == "py311h_lockstep_0" and NUMPY.stem == "numpy-2.4.6-py311h_lockstep_0"


def test_channel_is_named_as_the_site_names_it():
    local = LockedPackage("alpha", "1.0", "conda", "linux-64",
                          "file:///srv/channels/test-abc/noarch/alpha-1.0-0.conda")
    assert channel_name(local.url, {}) == "test-abc"
    assert channel_name(local.url, {"conda-forge": "file:///srv/channels/test-abc"}) == \
        "conda-forge"
    assert purl(local, {"conda-forge": "file:///srv/channels/test-abc/"}).startswith(
        "pkg:conda/conda-forge/alpha@1.0?build=0&subdir=noarch")


def test_the_lock_build_string_wins_over_the_file_name():
    odd = LockedPackage("x", "1", "conda", "linux-64", f"{CF}/noarch/x-1-weird-name.conda",
                        build_string="pyhd8ed1ab_0")
    assert odd.build == "pyhd8ed1ab_0"


def test_pip_packages_get_pypi_purls_and_no_build():
    pip = LockedPackage("PyAttimo", "0.6.0", "pip", "linux-64",
                        "https://files.example.org/pyattimo-0.6.0-cp37-abi3-manylinux.whl",
                        sha256="12" * 32)
    assert purl(pip) == "pkg:pypi/pyattimo@0.6.0"
    component = build_sbom(packages=[pip], subject=SUBJECT, channels={}, licenses={})[
        "components"][0]
    assert "properties" not in component and pip.build == ""


@pytest.mark.parametrize("text, expected", [
    ("MIT", [{"license": {"id": "MIT"}}]),
    ("BSD-3-Clause AND MIT", [{"expression": "BSD-3-Clause AND MIT"}]),
    ("BSD 3-clause", [{"license": {"name": "BSD 3-clause"}}]),
    ("GPL-2.0-or-later OR Proprietary", [{"license": {"name": "GPL-2.0-or-later OR Proprietary"}}]),
    ("  ", []),
])
def test_license_entries_always_validate(text, expected):
    assert license_entry(text) == expected


def test_component_has_hashes_download_url_and_license():
    bom = build_sbom(packages=[NUMPY, PYTHON], subject=SUBJECT, channels={},
                     licenses={NUMPY.stem: "BSD-3-Clause"})
    numpy = next(c for c in bom["components"] if c["name"] == "numpy")
    assert numpy["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32},
                               {"alg": "MD5", "content": "cd" * 16}]
    assert numpy["externalReferences"] == [{"type": "distribution", "url": NUMPY.url}]
    assert numpy["licenses"] == [{"license": {"id": "BSD-3-Clause"}}]
    python = next(c for c in bom["components"] if c["name"] == "python")
    assert "licenses" not in python
    graph = {d["ref"]: d["dependsOn"] for d in bom["dependencies"]}
    assert graph[numpy["bom-ref"]] == [python["bom-ref"]]
    assert graph["lockstep:forecast@" + SUBJECT.version] == sorted(
        [numpy["bom-ref"], python["bom-ref"]])
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"


def test_a_built_document_validates_against_the_1_5_schema():
    bom = build_sbom(packages=[NUMPY, PYTHON], subject=SUBJECT, channels={},
                     licenses={NUMPY.stem: "BSD-3-Clause", PYTHON.stem: "Python-2.0 AND MIT"},
                     tool_version="0.1.0", timestamp="2026-01-01T00:00:00Z")
    assert errors(bom) == []


def test_a_built_sdist_keeps_its_sdist_hash_and_names_the_built_wheel_schema_valid():
    sdist = LockedPackage(name="sdistdemo", version="1.0", manager="pip", platform="linux-64",
                          url="https://files.example/sdistdemo-1.0.tar.gz", sha256="12" * 32)
    built = {"12" * 32: {"wheel": "sdistdemo-1.0-py3-none-any.whl", "wheel_sha256": "34" * 32,
                         "backend": "flit_core.buildapi"}}
    bom = build_sbom(packages=[sdist, PYTHON], subject=SUBJECT, channels={}, licenses={},
                     built=built)
    (item,) = [c for c in bom["components"] if c["name"] == "sdistdemo"]
    assert item["hashes"] == [{"alg": "SHA-256", "content": "12" * 32}]
    assert {p["name"]: p["value"] for p in item["properties"]} == {
        "org.lockstep:build-backend": "flit_core.buildapi",
        "org.lockstep:built-wheel": "sdistdemo-1.0-py3-none-any.whl",
        "org.lockstep:built-wheel-sha256": "34" * 32,
    }
    assert errors(bom) == []
    plain = build_sbom(packages=[sdist], subject=SUBJECT, channels={}, licenses={})
    assert "properties" not in plain["components"][0]  # no record: the lock's entry alone


def test_the_schema_check_catches_a_bad_license_id():
    bom = build_sbom(packages=[NUMPY], subject=SUBJECT, channels={}, licenses={})
    bom["components"][0]["licenses"] = [{"license": {"id": "Not-A-License"}}]
    assert errors(bom)


def test_output_is_deterministic_and_order_independent():
    one = dumps(build_sbom(packages=[NUMPY, PYTHON], subject=SUBJECT, channels={}, licenses={}))
    two = dumps(build_sbom(packages=[PYTHON, NUMPY], subject=SUBJECT, channels={}, licenses={}))
    assert one == two
    stamped = build_sbom(packages=[NUMPY], subject=SUBJECT, channels={}, licenses={},
                         timestamp="2026-01-01T00:00:00Z")
    assert stamped["metadata"]["timestamp"] == "2026-01-01T00:00:00Z"
    assert stamped["serialNumber"] != json.loads(one)["serialNumber"]
    assert json.loads(one)["serialNumber"].startswith("urn:uuid:")


@pytest.mark.skipif(not REAL_LOCKS, reason="shared/real-world-locks is not beside the repo")
@pytest.mark.parametrize("lock", REAL_LOCKS, ids=lambda p: p.parent.name)
def test_every_real_world_lock_gives_a_valid_sbom(lock):
    lockfile = read_lockfile(lock)
    for platform in lockfile.metadata.platforms:
        expected = [p for p in lockfile.package if p.platform == platform
                    and not (p.manager == "conda" and p.name.startswith("__"))]
        bom = build_sbom(packages=packages_from_lock(lockfile, platform), subject=SUBJECT,
                         channels={}, licenses={})
        assert len(bom["components"]) == len(expected)
        assert all(c["hashes"][0]["alg"] == "SHA-256" for c in bom["components"]
                   if c["purl"].startswith("pkg:conda/"))


@pytest.mark.skipif(not REAL_LOCKS, reason="shared/real-world-locks is not beside the repo")
@pytest.mark.parametrize("lock", REAL_LOCKS, ids=lambda p: p.parent.name)
def test_every_real_world_sbom_validates_against_the_schema(lock):
    lockfile = read_lockfile(lock)
    platform = sorted(lockfile.metadata.platforms)[0]
    bom = build_sbom(packages=packages_from_lock(lockfile, platform), subject=SUBJECT,
                     channels={}, licenses={})
    assert errors(bom) == []


def test_an_unlocked_platform_is_named():
    lockfile = read_lockfile(REAL_LOCKS[0]) if REAL_LOCKS else pytest.skip("no real locks")
    with pytest.raises(ValueError, match="it has: "):
        packages_from_lock(lockfile, "win-arm64")


def test_licenses_come_from_the_package_cache_and_file_channels(tmp_path):
    from tests.channel.conda_pkg import PackageSpec, write_conda

    spec = PackageSpec(name="alpha", version="1.0", build="0", subdir="noarch",
                       noarch="generic", license="Apache-2.0")
    archive = write_conda(spec, tmp_path / "channel")
    from_channel = LockedPackage("alpha", "1.0", "conda", "linux-64", archive.as_uri(),
                                 sha256="00" * 32)
    extracted = LockedPackage("beta", "2.0", "conda", "linux-64",
                              f"{CF}/noarch/beta-2.0-0.conda", sha256="11" * 32)
    info = tmp_path / "pkgs" / extracted.stem / "info"
    info.mkdir(parents=True)
    (info / "about.json").write_text(json.dumps({"license": "MIT"}))
    missing = LockedPackage("gamma", "1", "conda", "linux-64", f"{CF}/noarch/gamma-1-0.conda")
    found = cached_licenses([from_channel, extracted, missing], tmp_path / "pkgs")
    assert found == {"alpha-1.0-0": "Apache-2.0", "beta-2.0-0": "MIT"}


def test_conda_meta_records_become_packages():
    record = {"name": "numpy", "version": "2.4.6", "build": "py311_0", "url": NUMPY.url,
              "sha256": "ab" * 32, "md5": "cd" * 16, "depends": ["python >=3.11", "libc"],
              "license": "BSD-3-Clause"}
    (package,) = packages_from_meta([record], "linux-64")
    assert package.build == "py311_0" and package.dependencies == ("libc", "python")


def test_cli_writes_the_sbom_of_a_lock(tmp_path, capsys):
    if not REAL_LOCKS:
        pytest.skip("no real-world locks")
    out = tmp_path / "sbom.json"
    assert cli.main(["sbom", str(REAL_LOCKS[0]), "-o", str(out)]) == 0
    bom = json.loads(out.read_text())
    assert bom["metadata"]["component"]["type"] == "application"
    assert "components" in capsys.readouterr().err
    assert cli.main(["sbom", str(tmp_path / "nope.yml")]) == 2
    assert "neither a lock file" in capsys.readouterr().err
