"""Which local files ``lockstep model push`` takes, and what it refuses."""

from __future__ import annotations

import pytest

from spawner.image.oci import sha256_digest
from spawner.models.artifact import ModelError
from spawner.models.store import collect


def test_files_by_base_name_and_folders_by_path_under_them(tmp_path):
    (tmp_path / "m.json").write_text("{}")
    folder = tmp_path / "tok"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "v.txt").write_bytes(b"abc")
    (folder / "a.txt").write_bytes(b"")
    found = collect([str(tmp_path / "m.json"), str(folder)])
    assert [(f.file.path, f.file.size) for f in found] == [
        ("m.json", 2), ("a.txt", 0), ("sub/v.txt", 3)]
    assert found[2].file.digest == sha256_digest(b"abc")


def test_symbolic_links_missing_paths_and_oversize_models_are_refused(tmp_path):
    (tmp_path / "real").write_bytes(b"x" * 10)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ModelError, match="not a regular file"):
        collect([str(tmp_path / "dir")])
    with pytest.raises(ModelError, match="missing or a symbolic link"):
        collect([str(tmp_path / "nope")])
    with pytest.raises(ModelError, match="over 5 bytes.*--max-bytes"):
        collect([str(tmp_path / "real")], max_bytes=5)
