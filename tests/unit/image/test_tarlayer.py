"""Deterministic tar layers: gzip members with a fixed header, cut at fixed offsets of the
tar (no daemon)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
import zlib

from spawner.image import tarlayer
from spawner.image.tarlayer import (
    GZIP_HEADER,
    GZIP_LEVEL,
    MEMBER,
    BlobCache,
    Entry,
    diff_id,
    entry_for_path,
    normal_mode,
    with_parents,
    write_layer,
)


def _tree(root, mtime):
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
    (root / "bin" / "tool").chmod(0o700)
    (root / "lib").mkdir()
    (root / "lib" / "data.txt").write_text("data\n")
    (root / "lib" / "data.txt").chmod(0o600)
    os.link(root / "lib" / "data.txt", root / "lib" / "hardlink.txt")
    (root / "lib" / "link").symlink_to("data.txt")
    for path in root.rglob("*"):
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return [
        entry_for_path(str(p), "opt/env/" + p.relative_to(root).as_posix()) for p in root.rglob("*")
    ]


def test_same_content_same_layer_whatever_the_host_metadata(tmp_path):
    a = _tree(tmp_path / "a", 1_000_000)
    b = _tree(tmp_path / "b", 2_000_000)
    assert diff_id(with_parents(a)) == diff_id(with_parents(list(reversed(b))))
    blob_a = write_layer(with_parents(a), tmp_path / "a.tgz")
    blob_b = write_layer(with_parents(b), tmp_path / "b.tgz")
    assert blob_a.digest == blob_b.digest
    assert (tmp_path / "a.tgz").read_bytes() == (tmp_path / "b.tgz").read_bytes()


def test_headers_are_normalised_and_hardlinks_are_files(tmp_path):
    blob = write_layer(with_parents(_tree(tmp_path / "t", 123456)), tmp_path / "l.tgz")
    with tarfile.open(blob.path) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert list(members) == sorted(members)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members.values()} == {
        (0, 0, 0, "", "")
    }
    assert members["opt/env/lib/hardlink.txt"].isreg()
    assert members["opt/env/lib/hardlink.txt"].size == 5
    assert members["opt/env/bin/tool"].mode == 0o755
    assert members["opt/env/lib/data.txt"].mode == 0o644
    assert (
        members["opt/env/lib/link"].issym() and members["opt/env/lib/link"].linkname == "data.txt"
    )
    assert members["opt"].isdir() and members["opt"].mode == 0o755


def test_gzip_header_is_fixed_and_diff_id_is_uncompressed_sha256(tmp_path):
    entries = [Entry("a/b.txt", "file", 0o644, data=b"hello\n")]
    blob = write_layer(with_parents(entries), tmp_path / "x.tgz")
    raw = (tmp_path / "x.tgz").read_bytes()
    assert raw[:10] == GZIP_HEADER == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
    tar = gzip.decompress(raw)
    assert blob.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert blob.digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert blob.size == len(raw) and blob.uncompressed_size == len(tar)
    assert diff_id(with_parents(entries)) == (blob.diff_id, len(tar))


GOLDEN_DIFF_ID = "sha256:a84a849ac32acfb8cb5de5c3cf51dac1bb2d32d73e4162bcb3504ccfb922e25b"


def test_golden_layer_digest(tmp_path):
    """Pinned: a change here changes every image digest lockstep has ever built."""
    entries = with_parents(
        [
            Entry("opt/env/bin/x", "file", 0o755, data=b"#!/bin/sh\n"),
            Entry("opt/env/share/y", "symlink", 0o777, linkname="../bin/x"),
        ]
    )
    assert diff_id(entries) == (GOLDEN_DIFF_ID, 10240)
    assert hashlib.sha256(_reference_tar(entries)).hexdigest() == GOLDEN_DIFF_ID[7:]
    blob = write_layer(entries, tmp_path / "x.tgz")
    # libdeflate 1 (``deflate`` 0.9.0); zlib 1 gave sha256:69f6df51...
    assert blob.digest == "sha256:5556c9e91ac0dc180417a36dc6a2bf297f825e7c2af394865c93a23ce5c3eef7"


def _members(raw: bytes) -> list[bytes]:
    """Each gzip member's decompressed bytes, in order."""
    found = []
    while raw:
        inflater = zlib.decompressobj(wbits=31)
        found.append(inflater.decompress(raw))
        assert inflater.eof
        raw = inflater.unused_data
    return found


def test_a_big_layer_is_one_gzip_member_per_megabyte_of_tar_whatever_the_reads(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1 << 19) * 5)  # 2.5 MiB: crosses member ends mid-file
    entries = with_parents([
        Entry("opt/env/a.txt", "file", data=b"small\n" * 100),
        entry_for_path(str(big), "opt/env/big.bin"),
        *(Entry(f"opt/env/many/{i}.py", "file", data=b"x = %d\n" % i) for i in range(300)),
    ])  # fmt: skip
    blob = write_layer(entries, tmp_path / "x.tgz")
    raw = (tmp_path / "x.tgz").read_bytes()
    members = _members(raw)
    tar = b"".join(members)
    assert [len(m) for m in members[:-1]] == [MEMBER] * (len(members) - 1)
    assert 0 < len(members[-1]) <= MEMBER and len(members) == -(-len(tar) // MEMBER) >= 3
    assert raw.count(GZIP_HEADER) >= len(members)  # each member has the fixed header
    assert blob.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert gzip.decompress(raw) == tar  # Python reads it as one stream
    gnu = subprocess.run(["gzip", "-dc", str(tmp_path / "x.tgz")], capture_output=True, check=True)
    assert gnu.stdout == tar  # and GNU gzip
    # the same tar fed in other pieces (one byte, odd sizes) gives the same blob
    for pieces in ((1, 511, 4097), (MEMBER - 1, 3), (7 * MEMBER,)):
        out = io.BytesIO()
        sink = tarlayer._Sink(out, GZIP_LEVEL)
        position, turn = 0, 0
        while position < len(tar):
            step = pieces[turn % len(pieces)]
            sink.write(tar[position : position + step])
            position, turn = position + step, turn + 1
        sink.finish()
        assert out.getvalue() == raw, pieces


def _reference_tar(entries):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in sorted(entries, key=lambda e: e.path):
            info = tarfile.TarInfo(e.path + ("/" if e.kind == "dir" else ""))
            info.mode, info.mtime = e.mode, 0
            info.uname = info.gname = ""
            if e.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif e.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, e.linkname
                tar.addfile(info)
            else:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
    return out.getvalue()


def test_blob_cache_reuses_compressed_blob(tmp_path):
    cache = BlobCache(tmp_path / "cache")
    entries = with_parents([Entry("f", "file", 0o644, data=b"x" * 1000)])
    first = cache.layer(entries)
    stamp = os.stat(first.path).st_mtime_ns
    second = cache.layer(entries)
    assert second == first and os.stat(second.path).st_mtime_ns == stamp


def test_duplicate_paths_and_escapes_are_refused(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="duplicate"):
        diff_id([Entry("a", "dir"), Entry("a/", "dir")])
    with pytest.raises(ValueError, match="relative"):
        Entry("../etc/passwd", "file", data=b"")
    with pytest.raises(ValueError, match="relative"):
        Entry("/etc/passwd", "file", data=b"")


def test_normal_mode():
    assert normal_mode("file", 0o100700) == 0o755
    assert normal_mode("file", 0o100600) == 0o644
    assert normal_mode("dir", 0o700) == 0o755


def test_a_build_host_without_libdeflate_is_told_what_to_install(tmp_path, monkeypatch):
    import sys

    import pytest

    from spawner.errors import LockstepError

    monkeypatch.setitem(sys.modules, "deflate", None)  # import deflate -> ImportError
    entries = with_parents([Entry("f", "file", 0o644, data=b"x")])
    with pytest.raises(LockstepError, match=r"needs the 'deflate' package .*lockstep\[build\]"):
        write_layer(entries, tmp_path / "x.tgz")
    assert not list(tmp_path.iterdir())  # nothing half-written
    assert diff_id(entries)[1] == 10240  # hashing alone needs no compressor
