"""``pipwheels.best_file``: the one file of a release each platform installs."""

from __future__ import annotations

import pytest

from spawner.lock.pipwheels import best_file, stub_wheel
from spawner.lock.spec import SpecError

BASE = "https://files.example/"
FILES = (
    "cn-3.5.3-py3-none-any.whl",
    "cn-3.5.3-cp37-abi3-manylinux1_x86_64.manylinux_2_28_x86_64.manylinux_2_5_x86_64.whl",
    "cn-3.5.3-cp311-cp311-manylinux1_x86_64.manylinux_2_28_x86_64.manylinux_2_5_x86_64.whl",
    "cn-3.5.3-cp311-cp311-manylinux_2_39_x86_64.whl",
    "cn-3.5.3-cp311-cp311-macosx_10_9_universal2.whl",
    "cn-3.5.3-cp311-cp311-macosx_11_0_arm64.whl",
    "cn-3.5.3-cp311-cp311-win_amd64.whl",
    "cn-3.5.3-cp312-cp312-win_amd64.whl",
)
PACKAGE = {"name": "cn", "version": "3.5.3",
           "wheels": [{"url": BASE + f, "hashes": {"sha256": f"{i:064x}"}}
                      for i, f in enumerate(FILES)],
           "sdist": {"url": BASE + "cn-3.5.3.tar.gz", "hashes": {"sha256": "f" * 64}}}


@pytest.mark.parametrize(
    ("platform", "glibc", "chosen"),
    [
        ("linux-64", "x86_64-manylinux_2_28", 2),  # cp311 beats abi3 and pure; 2_39 too new
        ("linux-64", "x86_64-manylinux_2_17", 2),  # manylinux1 (2_5) still fits
        ("osx-arm64", "", 5),
        ("osx-64", "", 4),
        ("win-64", "", 6),
        ("linux-aarch64", "aarch64-manylinux_2_28", 0),  # only the pure wheel fits
    ],
)
def test_best_file_per_platform(platform, glibc, chosen):
    got = best_file(PACKAGE, platform=platform, python="3.11.7", glibc=glibc,
                    allow_sdists=False, source="environment.yml")
    assert got["url"] == BASE + FILES[chosen] and got["kind"] == "wheel"


def test_sdist_only_is_refused_naming_the_package_unless_allowed():
    package = {"name": "old", "version": "1.0", "wheels": [], "sdist": PACKAGE["sdist"]}
    with pytest.raises(SpecError) as err:
        best_file(package, platform="linux-64", python="3.11", glibc="x86_64-manylinux_2_28",
                  allow_sdists=False, source="environment.yml")
    assert "pip package old 1.0 has only a source distribution for linux-64" in str(err.value)
    assert "use the conda package of old instead" in str(err.value)
    got = best_file(package, platform="linux-64", python="3.11", glibc="x86_64-manylinux_2_28",
                    allow_sdists=True, source="environment.yml")
    assert got["kind"] == "sdist"


def test_stub_wheels_are_byte_identical(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = stub_wheel(tmp_path / "a", "requests", "2.32.5")
    two = stub_wheel(tmp_path / "b", "requests", "2.32.5")
    assert one.name == "requests-2.32.5-py3-none-any.whl"
    assert one.read_bytes() == two.read_bytes()
