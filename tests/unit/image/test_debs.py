"""Pinned Debian packages -> base layer entries (no network: a synthetic .deb)."""

from __future__ import annotations

import io
import tarfile

import pytest

from spawner.errors import LockstepError
from spawner.image import debs

SHA = "a" * 64


def test_parse_lock_sorted_and_strict():
    pins = debs.parse_lock(f"# c\nz=1 {SHA} http://x/z.deb\na=1:2-3 {SHA} http://x/a.deb\n")
    assert [(p.name, p.version) for p in pins] == [("a", "1:2-3"), ("z", "1")]
    with pytest.raises(LockstepError, match="lock.sh"):
        debs.parse_lock("bash 5.2\n")


def test_rules_last_match_wins():
    rules = debs.parse_rules("usr/share/doc/*\nlibc-bin:*\n!libc-bin:usr/lib/locale/C.utf8/*\n")
    assert debs.excluded(rules, "bash", "usr/share/doc/bash/README")
    assert not debs.excluded(rules, "bash", "usr/bin/bash")
    assert debs.excluded(rules, "libc-bin", "usr/bin/ldd")
    assert not debs.excluded(rules, "libc-bin", "usr/lib/locale/C.utf8/LC_CTYPE")


def test_merged_usr():
    assert debs.merged_usr("bin/bash") == "usr/bin/bash"
    assert debs.merged_usr("lib64") == "usr/lib64"
    assert debs.merged_usr("etc/bash.bashrc") == "etc/bash.bashrc"
    assert debs.merged_usr("library/x") == "library/x"


def _deb(tmp_path):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        for name, kind, payload in [
            ("./", "d", b""),
            ("./bin/", "d", b""),
            ("./bin/tool", "f", b"T"),
            ("./bin/alias", "h", b"./bin/tool"),
            ("./usr/share/doc/x/README", "f", b"doc"),
        ]:
            info = tarfile.TarInfo(name)
            if kind == "d":
                info.type = tarfile.DIRTYPE
            elif kind == "h":
                info.type, info.linkname = tarfile.LNKTYPE, payload.decode()
            else:
                info.size, info.mode = len(payload), 0o755
            tar.addfile(info, io.BytesIO(payload) if kind == "f" else None)

    def member(name, body):
        return (
            f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode()
            + body
            + (b"\n" if len(body) % 2 else b"")
        )

    raw = b"!<arch>\n" + member("debian-binary", b"2.0\n") + member("data.tar.xz", data.getvalue())
    (tmp_path / "x.deb").write_bytes(raw)
    return tmp_path / "x.deb"


def test_deb_entries(tmp_path):
    rules = debs.parse_rules("usr/share/doc/*\n")
    entries = {e.path: e for e in debs.deb_entries(_deb(tmp_path), "x", rules)}
    assert sorted(entries) == ["usr/bin", "usr/bin/alias", "usr/bin/tool"]
    assert entries["usr/bin/alias"].data == b"T" and entries["usr/bin/alias"].kind == "file"
    assert entries["usr/bin/tool"].mode == 0o755
