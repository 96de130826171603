"""A pip package's dependencies as conda-lock writes them: markers for the platform, specs."""

from __future__ import annotations

import io
import tarfile
import zipfile

from spawner.lock import pipdeps
from spawner.lock.fetch import sha256_of

REQUIRES = [
    "requests (<3.0.0,>=2.0.1)",
    "colorama; sys_platform == 'win32'",
    "uvloop>=0.15; sys_platform != 'win32' and platform_machine == 'x86_64'",
    "tomli>=1.1.0; python_version < '3.11'",
    "numpy==1.26.4",
    "Typing_Extensions",
    "pytest>=7; extra == 'test'",
    "six<2",
    "six>=1.5",
]


def test_markers_are_evaluated_for_each_platform_and_extras_left_out():
    linux = pipdeps.dependencies(REQUIRES, platform="linux-64", python="3.11.9")
    assert linux == {
        "numpy": "1.26.4",
        "requests": ">=2.0.1,<3.0.0",
        "six": ">=1.5,<2",
        "typing-extensions": "*",
        "uvloop": ">=0.15",
    }
    windows = pipdeps.dependencies(REQUIRES, platform="win-64", python="3.10.4")
    assert set(windows) == {"colorama", "numpy", "requests", "six", "tomli", "typing-extensions"}
    arm_mac = pipdeps.dependencies(REQUIRES, platform="osx-arm64", python="3.11")
    assert "uvloop" not in arm_mac and "colorama" not in arm_mac
    assert list(linux) == sorted(linux)


def test_dynamic_requires_of_an_old_sdist_are_unknown():
    assert pipdeps.parse_requires("Metadata-Version: 2.1\nName: a\nRequires-Dist: b\n") == ["b"]
    assert (
        pipdeps.parse_requires("Metadata-Version: 2.2\nName: a\nDynamic: Requires-Dist\n") is None
    )


def test_read_requires_verifies_the_file_and_caches_by_sha256(tmp_path):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(
            "demo-1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: b>1\n",
        )
    sha = sha256_of(wheel)
    cache = tmp_path / "cache"
    args = dict(
        name="demo", version="1.0", url=wheel.as_uri(), sha256=sha, cache_dir=cache, mirrors={}
    )
    assert pipdeps.read_requires(**args) == ["b>1"]
    wheel.unlink()  # the second read is served from the metadata cache
    assert pipdeps.read_requires(**args) == ["b>1"]
    assert (cache / "pip-metadata" / sha).is_file()


def test_sdist_metadata_before_2_2_is_not_trusted(tmp_path):
    sdist = tmp_path / "old-1.0.tar.gz"
    data = b"Metadata-Version: 2.1\nName: old\nVersion: 1.0\nRequires-Dist: x\n"
    with tarfile.open(sdist, "w:gz") as tar:
        info = tarfile.TarInfo("old-1.0/PKG-INFO")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert (
        pipdeps.read_requires(
            name="old",
            version="1.0",
            url=sdist.as_uri(),
            sha256=sha256_of(sdist),
            cache_dir=tmp_path / "c",
            mirrors={},
        )
        is None
    )
