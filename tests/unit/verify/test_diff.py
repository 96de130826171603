"""verify's pure diff (lock vs conda-meta, file hashes) and the image reader's layers."""

import hashlib
import io
import json
import tarfile

from spawner.image.reader import ImageContents, apply_layer
from spawner.lock.package import LockedPackage, archive_build
from spawner.verify.diff import (
    Difference,
    diff_packages,
    file_differences,
    packages_from_lock,
    packages_from_meta,
)

URL = "https://conda.example/linux-64/"


def lock_entry(name, version, build, sha, platform="linux-64", manager="conda"):
    return LockedPackage(name, version, manager, platform,
                         url=f"{URL}{name}-{version}-{build}.conda", sha256=sha)


def meta(name, version, build, sha, paths=()):
    return {
        "name": name,
        "version": version,
        "build": build,
        "sha256": sha,
        "fn": f"{name}-{version}-{build}.conda",
        "url": f"http://mirror/{name}.conda",
        "paths_data": {"paths_version": 1, "paths": list(paths)},
    }


def test_build_from_file():
    assert archive_build("numpy", "1.26.4", "numpy-1.26.4-py311h64a7726_0.conda") == (
        "py311h64a7726_0")
    assert archive_build("ca-certificates", "2023.7.22",
                         "ca-certificates-2023.7.22-hbcca054_0.tar.bz2") == "hbcca054_0"
    assert archive_build("x", "1", "x-1.whl") == ""


def test_lock_packages_keep_one_platform_and_conda_only():
    entries = [
        lock_entry("numpy", "2.0", "py311_0", "aa"),
        lock_entry("numpy", "2.0", "py311_0", "bb", platform="osx-arm64"),
        lock_entry("requests", "2.3", "pypi_0", "", manager="pip"),
    ]
    packages = packages_from_lock(entries)
    assert list(packages) == ["numpy"]
    assert packages["numpy"].sha256 == "aa"
    assert packages["numpy"].build == "py311_0"
    assert packages["numpy"].filename == "numpy-2.0-py311_0.conda"


def test_identical_sets_have_no_difference_even_from_a_mirror():
    locked = packages_from_lock([lock_entry("python", "3.11.7", "h_0", "11")])
    installed = packages_from_meta([meta("python", "3.11.7", "h_0", "11")])
    assert diff_packages(locked=locked, installed=installed) == ()


def test_missing_extra_and_changed_are_named():
    locked = packages_from_lock(
        [
            lock_entry("python", "3.11.7", "h_0", "11"),
            lock_entry("numpy", "2.4.6", "py311_0", "22"),
            lock_entry("zlib", "1.3", "h_0", "33"),
        ]
    )
    installed = packages_from_meta(
        [
            meta("python", "3.11.7", "h_0", "11"),
            meta("numpy", "2.4.5", "py311_0", "99"),
            meta("evil", "1.0", "0", "44"),
        ]
    )
    diffs = diff_packages(locked=locked, installed=installed)
    assert [d.describe() for d in diffs] == [
        "extra    evil: evil 1.0 0 is installed but not locked",
        "changed  numpy: version 2.4.6 (lock) != 2.4.5 (image); sha256 22 (lock) != 99 (image); "
        "file numpy-2.4.6-py311_0.conda (lock) != numpy-2.4.5-py311_0.conda (image)",
        "missing  zlib: locked zlib 1.3 h_0 is not installed",
    ]
    assert diffs[0].to_json() == {
        "package": "evil",
        "kind": "extra",
        "detail": "evil 1.0 0 is installed but not locked",
    }


def test_file_differences_name_the_package_and_the_file():
    good, bad = "a" * 64, "b" * 64
    records = [
        meta(
            "delta",
            "1.0",
            "h_0",
            "d",
            paths=[
                {
                    "_path": "bin/delta",
                    "path_type": "hardlink",
                    "sha256": "x" * 64,
                    "sha256_in_prefix": good,
                },
                {"_path": "etc/delta/prefix.txt", "path_type": "hardlink", "sha256": good},
                {"_path": "lib/gone.so", "path_type": "hardlink", "sha256": good},
                {"_path": "bin/link", "path_type": "softlink", "sha256": good},
            ],
        )
    ]
    files = {"opt/env/bin/delta": good, "opt/env/etc/delta/prefix.txt": bad}
    (diff,) = file_differences(records, files)
    assert diff == Difference(
        "delta",
        "file",
        "etc/delta/prefix.txt has sha256 bbbbbbbbbbbb.., "
        "recorded aaaaaaaaaaaa..; lib/gone.so is missing",
    )


def layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_layers_apply_in_order_with_whiteouts():
    contents = ImageContents("r", "d", {})
    record = json.dumps(meta("alpha", "1.0", "0", "s")).encode()
    apply_layer(
        contents,
        layer(
            [
                ("opt/env/share/a.txt", b"one"),
                ("etc/passwd", b"x"),
                ("opt/env/share/old/x", b"x"),
                ("opt/env/conda-meta/alpha-1.0-0.json", record),
                ("opt/env/conda-meta/beta-1.0-0.json", record),
            ]
        ),
        hash_files=True,
    )
    apply_layer(
        contents,
        layer(
            [
                ("./opt/env/share/a.txt", b"two"),
                ("opt/env/share/.wh.old", b""),
                ("opt/env/conda-meta/.wh.beta-1.0-0.json", b""),
            ]
        ),
        hash_files=True,
    )
    assert contents.files == {
        "opt/env/share/a.txt": hashlib.sha256(b"two").hexdigest(),
        "opt/env/conda-meta/alpha-1.0-0.json": hashlib.sha256(record).hexdigest(),
    }
    assert list(contents.meta) == ["opt/env/conda-meta/alpha-1.0-0.json"]
    assert contents.records[0]["name"] == "alpha"


def test_opaque_whiteout_empties_the_folder():
    contents = ImageContents("r", "d", {})
    apply_layer(
        contents,
        layer([("opt/env/lib/a", b"a"), ("opt/env/lib/sub/b", b"b"), ("opt/env/bin/c", b"c")]),
        hash_files=True,
    )
    apply_layer(
        contents,
        layer([("opt/env/lib/.wh..wh..opq", b""), ("opt/env/lib/new", b"n")]),
        hash_files=True,
    )
    assert sorted(contents.files) == ["opt/env/bin/c", "opt/env/lib/new"]
