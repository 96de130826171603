"""The offline test channel: real, reproducible .conda archives (rattler only in subprocesses)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest
import zstandard

from tests.channel import rattler_run
from tests.channel.build import index_channel
from tests.channel.conda_pkg import PLACEHOLDER, conda_bytes, write_conda
from tests.channel.tiny import tiny_specs
from tests.channel.wheel_convert import (
    SITE,
    WheelMeta,
    conda_name,
    console_script,
    depends,
    read_meta,
    target_path,
)
from tests.channel.wheels import LOCK_FILE, parse_lock


def members(archive: bytes) -> dict[str, dict[str, bytes]]:
    """``{inner tarball: {member path: bytes}}`` of a .conda archive."""
    out = {}
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        out["zip"] = {name: zf.read(name) for name in zf.namelist()}
    for name, data in out["zip"].items():
        if name.endswith(".tar.zst"):
            raw = zstandard.ZstdDecompressor().decompressobj().decompress(data)
            with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
                out[name.split("-")[0]] = {
                    m.name: (tar.extractfile(m).read() if m.isfile() else b"")
                    for m in tar.getmembers()
                }
    return out


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny")
    for spec in tiny_specs():
        write_conda(spec, out)
    index_channel(out)
    return out


def test_tiny_packages_are_conda_v2_archives_with_info_files(tiny_dir):
    files = sorted(p.relative_to(tiny_dir).as_posix() for p in tiny_dir.glob("*/*.conda"))
    assert files == [
        "linux-64/delta-1.0-h_lockstep_0.conda",
        "noarch/alpha-1.0-0.conda",
        "noarch/alpha-2.0-0.conda",
        "noarch/beta-1.0-0.conda",
        "noarch/gamma-1.0-0.conda",
        "noarch/hello-1.0-0.conda",
    ]
    parts = members((tiny_dir / "noarch/beta-1.0-0.conda").read_bytes())
    assert json.loads(parts["zip"]["metadata.json"]) == {"conda_pkg_format_version": 2}
    assert {"info/index.json", "info/paths.json", "info/about.json", "info/files"} <= set(
        parts["info"]
    )
    index = json.loads(parts["info"]["info/index.json"])
    assert (index["name"], index["version"], index["depends"]) == ("beta", "1.0", ["alpha <2"])
    assert index["noarch"] == "generic" and index["subdir"] == "noarch"
    assert set(parts["pkg"]) == {"share/beta/README"}
    assert parts["info"]["info/files"] == b"share/beta/README\n"


def test_paths_json_hashes_match_and_placeholder_is_declared():
    delta = next(s for s in tiny_specs() if s.name == "delta")
    parts = members(conda_bytes(delta))
    paths = {p["_path"]: p for p in json.loads(parts["info"]["info/paths.json"])["paths"]}
    for path, data in parts["pkg"].items():
        assert paths[path]["sha256"] == hashlib.sha256(data).hexdigest()
        assert paths[path]["size_in_bytes"] == len(data)
        assert paths[path]["prefix_placeholder"] == PLACEHOLDER
        assert paths[path]["file_mode"] == "text"
    index = json.loads(parts["info"]["info/index.json"])
    assert (index["subdir"], index["arch"], index["platform"]) == ("linux-64", "x86_64", "linux")


def test_archives_are_byte_identical_across_builds(tmp_path):
    first = {s.filename: hashlib.sha256(conda_bytes(s)).hexdigest() for s in tiny_specs()}
    for spec in tiny_specs():
        write_conda(spec, tmp_path)
    second = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.glob("*/*")}
    assert first == second


def test_index_writes_repodata_for_both_subdirs(tiny_dir):
    linux = json.loads((tiny_dir / "linux-64/repodata.json").read_text())
    noarch = json.loads((tiny_dir / "noarch/repodata.json").read_text())
    assert set(linux["packages.conda"]) == {"delta-1.0-h_lockstep_0.conda"}
    assert len(noarch["packages.conda"]) == 5
    record = noarch["packages.conda"]["alpha-2.0-0.conda"]
    assert (
        record["sha256"]
        == hashlib.sha256((tiny_dir / "noarch/alpha-2.0-0.conda").read_bytes()).hexdigest()
    )


def test_unsolvable_specs_are_named_in_the_error(tiny_dir):
    result = rattler_run.run(tiny_dir, ["beta", "gamma"])
    assert result["ok"] is False and result["kind"] == "SolverError"
    assert "beta" in result["error"] and "gamma" in result["error"]


def test_install_rewrites_the_prefix_placeholder(tiny_dir, tmp_path):
    staging = tmp_path / "staging"
    result = rattler_run.run(
        tiny_dir,
        ["delta", "beta"],
        prefix=staging,
        target_prefix="/opt/env",
        cache_dir=tmp_path / "pkgs",
    )
    assert result["ok"], result
    assert [r["name"] for r in result["records"]] == ["alpha", "beta", "delta"]
    assert (staging / "etc/delta/prefix.txt").read_text() == "prefix=/opt/env\n"
    assert (staging / "share/alpha/VERSION").read_text() == "1.0\n"


def test_lock_pins_every_wheel_by_version_and_hash():
    pins = parse_lock(LOCK_FILE.read_text())
    names = [conda_name(p.name) for p in pins]
    assert len(names) == len(set(names)) >= 90
    versions = {conda_name(p.name): p.version for p in pins}
    assert versions["jupyterhub"] == "6.1.1"
    assert {"jupyter-server", "ipykernel", "nbclient", "nbformat", "numpy", "pyzmq"} <= set(names)


def test_requires_dist_becomes_conda_depends_with_markers_and_extras():
    meta = WheelMeta(
        name="demo",
        version="1.0",
        requires=(
            "Jupyter_Core>=5,<6",
            "pywin32; sys_platform == 'win32'",
            "jsonschema[format-nongpl]>=4.18",
            "pytest; extra == 'test'",
            "tomli; python_version < '3.11'",
        ),
        license="MIT",
        summary="",
    )
    jsonschema = WheelMeta(
        "jsonschema", "4.26.0", ("attrs>=22", "fqdn; extra == 'format-nongpl'"), "MIT", ""
    )
    assert depends(meta, {"jsonschema": jsonschema}) == [
        "fqdn",
        "jsonschema >=4.18",
        "jupyter-core <6,>=5",
        "python >=3.11,<3.12",
        "python_abi 3.11.* *_cp311",
    ]


def test_wheel_paths_scripts_and_licence():
    assert target_path("zmq/__init__.py", "pyzmq-27.data", "pyzmq") == f"{SITE}/zmq/__init__.py"
    assert target_path("x-1.data/scripts/tool", "x-1.data", "x") == "bin/tool"
    assert target_path("x-1.data/data/share/a", "x-1.data", "x") == "share/a"
    script = console_script("jupyterhub.singleuser:main").decode()
    assert script.startswith(f"#!{PLACEHOLDER}/bin/python\n")
    assert "from jupyterhub.singleuser import main" in script
    meta = read_meta(
        b"Metadata-Version: 2.1\nName: Foo_Bar\nVersion: 1.0\n"
        b"Classifier: License :: OSI Approved :: BSD License\n"
    )
    assert (meta.name, meta.license) == ("foo-bar", "BSD License")
