"""Layer tar headers are ``tarfile``'s PAX-format headers byte for byte: the fast path
(``tarlayer._header``) against ``tarfile`` itself, on this checkout's own tree and on
every edge of the fast path (lengths, pax records for long names and links, non-ASCII,
big numbers, owners, links)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from spawner.image.tarlayer import Entry, _entry_size, _header, _tarinfo, entry_for_path

REPO = Path(__file__).resolve().parents[3]


def by_tarfile(entry: Entry, mtime: int) -> bytes:
    return _tarinfo(entry, mtime).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def test_every_entry_of_a_real_tree_gets_tarfiles_bytes():
    entries = []
    for folder in ("spawner", "tests", "environments", "helm"):
        for dirpath, dirnames, filenames in os.walk(REPO / folder):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                entries.append(entry_for_path(path, "opt/env/" + os.path.relpath(path, REPO)))
    assert len(entries) > 500
    for entry in entries:
        for mtime in (0, 1_700_000_000):
            assert _header(entry, _entry_size(entry), mtime) == by_tarfile(entry, mtime), entry


EDGES = [
    Entry("a" * 100, "file", data=b"x"),  # the longest name in the ustar field
    Entry("a" * 101, "file", data=b"x"),  # one more: a pax header
    Entry("d" * 99, "dir"),  # 99 + "/" fits
    Entry("d" * 100, "dir"),  # 100 + "/" does not
    Entry("opt/env/naïve.py", "file", data=b""),  # not ASCII
    Entry("opt/env/\udcff.py", "file", data=b""),  # undecodable name (surrogateescape)
    Entry("opt/env/l", "symlink", 0o777, linkname="t" * 100),
    Entry("opt/env/l", "symlink", 0o777, linkname="t" * 101),
    Entry("opt/env/l", "symlink", 0o777, linkname="ü"),
    Entry("p" * 92, "file", data=b"x"),  # a record of 99 bytes...
    Entry("p" * 93, "file", data=b"x"),  # ...and of 101: its length gains a digit
    Entry("opt/env/" + "x/" * 200 + "end.py", "file", data=b"x"),  # a deep path
    Entry("e" * 101, "dir"),  # a long folder name
    Entry("l" * 120, "symlink", 0o777, linkname="t" * 130),  # both in one pax header
    Entry("l" * 120, "symlink", 0o777, linkname="short"),
    Entry("n" * 150, "file", uid=0o10000000, data=b""),  # long and a big id: tarfile's
    Entry("ü" * 60, "file", data=b""),  # long and not ASCII: tarfile's
    Entry("opt/env/home", "dir", 0o700, uid=1000, gid=100),
    Entry("opt/env/big-ids", "file", uid=0o10000000, gid=5, data=b"1"),
    Entry("opt/env/exec", "file", 0o4755, data=b"#!/bin/sh\n"),
]


@pytest.mark.parametrize("entry", EDGES, ids=lambda e: f"{e.kind}-{len(e.path)}-{e.path[-6:]}")
@pytest.mark.parametrize("mtime", [0, 0o77777777777, 0o100000000000])
def test_the_edges_of_the_fast_path_get_tarfiles_bytes(entry, mtime):
    assert _header(entry, _entry_size(entry), mtime) == by_tarfile(entry, mtime)


def test_a_size_past_the_ustar_field_gets_tarfiles_pax_header(tmp_path):
    big = Entry("opt/env/huge", "file", source=str(tmp_path / "none"), size=8**11)
    assert _header(big, 8**11, 0) == by_tarfile(big, 0)
    assert b"size=" in _header(big, 8**11, 0)  # tarfile's pax record, not a ustar field
