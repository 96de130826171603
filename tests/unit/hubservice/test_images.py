"""Image facts from a manifest and config (pure halves of spawner.hubservice.images)."""

from __future__ import annotations

from spawner.hubservice.images import META_HISTORY, meta_layer, packages_of_records, summarise
from spawner.labels import JUPYTERLAB, LOCK_HASH
from tests.unit.hubservice.servicedata import digest

MANIFEST = {"config": {"digest": digest("c"), "size": 100},
            "layers": [{"digest": digest("l1"), "size": 1000},
                       {"digest": digest("l2"), "size": 24}]}
CONFIG = {"created": "2026-01-01T00:00:00Z",
          "config": {"Labels": {LOCK_HASH: "sha256:abc"}},
          "history": [{"created_by": "base", "empty_layer": False},
                      {"created_by": "ENV x", "empty_layer": True},
                      {"created_by": META_HISTORY}]}


def test_summary_has_size_build_time_and_lock_hash():
    info = summarise(f"r/p@{digest('m')}", MANIFEST, CONFIG)
    assert (info.size, info.layers, info.created) == (1124, 2, "2026-01-01T00:00:00Z")
    assert info.lock_hash == "sha256:abc" and info.digest == digest("m")
    assert info.jupyterlab == ""  # no JupyterLab label: none


def test_summary_reads_the_jupyterlab_label():
    config = {**CONFIG, "config": {"Labels": {LOCK_HASH: "sha256:abc", JUPYTERLAB: "4.2.5"}}}
    assert summarise(f"r/p@{digest('m')}", MANIFEST, config).jupyterlab == "4.2.5"


def test_the_conda_meta_layer_is_found_by_its_history():
    assert meta_layer(MANIFEST, CONFIG) == digest("l2")
    assert meta_layer(MANIFEST, {"history": [{"created_by": "a"}, {"created_by": "b"}]}) is None
    assert meta_layer(MANIFEST, {}) is None


def test_packages_from_conda_meta_records_sorted():
    records = [{"name": "zlib", "version": "1.3", "build": "h0", "fn": "zlib-1.3-h0.conda"},
               {"name": "bad", "_invalid": True},
               {"name": "attrs", "version": "23", "build": "py_0"}]
    assert [(p.name, p.build) for p in packages_of_records(records)] == [
        ("attrs", "py_0"), ("zlib", "h0")]
