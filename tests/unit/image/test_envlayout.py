"""Staged prefix -> per-package entries; conda-meta normalised (no daemon)."""

from __future__ import annotations

import json

from spawner.image.envlayout import layout_prefix, normalise_meta, pyc_source


def _meta(prefix, name, files, **extra):
    (prefix / "conda-meta").mkdir(parents=True, exist_ok=True)
    record = {
        "name": name,
        "version": "1.0",
        "build": "0",
        "depends": ["python >=3.11"],
        "files": files,
        **extra,
    }
    (prefix / "conda-meta" / f"{name}-1.0-0.json").write_text(json.dumps(record))


def test_layout_assigns_every_path(tmp_path):
    prefix = tmp_path / "stage"
    for rel in (
        "bin/tool",
        "lib/python3.11/site-packages/pkg/__init__.py",
        "lib/python3.11/site-packages/pkg/__pycache__/__init__.cpython-311.pyc",
        "share/orphan.txt",
        "CACHEDIR.TAG",
    ):
        (prefix / rel).parent.mkdir(parents=True, exist_ok=True)
        (prefix / rel).write_text(rel)
    (prefix / "empty").mkdir()
    _meta(prefix, "tool", ["bin/tool"], extracted_package_dir=str(tmp_path / "cache" / "tool"))
    _meta(prefix, "pkg", ["lib/python3.11/site-packages/pkg/__init__.py"])
    (prefix / "conda-meta" / "history").write_text("==> 2024-01-01 <==\n")
    layout = layout_prefix(prefix)
    owned = {n: sorted(e.path for e in es) for n, es in layout.owned.items()}
    assert owned == {
        "pkg": [
            "opt/env/lib/python3.11/site-packages/pkg/__init__.py",
            "opt/env/lib/python3.11/site-packages/pkg/__pycache__/__init__.cpython-311.pyc",
        ],
        "tool": ["opt/env/bin/tool"],
    }
    assert sorted(e.path for e in layout.extra) == ["opt/env/empty", "opt/env/share/orphan.txt"]
    meta = {e.path: e.data for e in layout.meta}
    assert meta["opt/env/conda-meta/history"] == b""
    tool = json.loads(meta["opt/env/conda-meta/tool-1.0-0.json"])
    assert "extracted_package_dir" not in tool and str(tmp_path) not in json.dumps(tool)
    assert [p.name for p in layout.package_infos()] == ["pkg", "tool"]
    assert layout.package_infos()[0].depends == ("python",)


def test_normalise_meta_drops_host_paths():
    record = {
        "name": "x",
        "extracted_package_dir": "/root/.cache/pkgs/x",
        "package_tarball_full_path": "/root/.cache/x.conda",
        "link": {"source": "/root/.cache/pkgs/x", "type": 1},
        "files": ["bin/x"],
        "note": "/tmp/stage-1/bin/x",
    }
    out = normalise_meta(record, staging="/tmp/stage-1")
    assert out == {"name": "x", "link": {"type": 1}, "files": ["bin/x"], "note": "/opt/env/bin/x"}
    assert record["link"]["source"]  # input untouched


def test_pyc_source():
    assert pyc_source("a/__pycache__/b.cpython-311.pyc") == "a/b.py"
    assert pyc_source("a/__pycache__/b.cpython-311.opt-1.pyc") == "a/b.py"
    assert pyc_source("__pycache__/b.cpython-311.pyc") == "b.py"
    assert pyc_source("a/b.pyc") is None
