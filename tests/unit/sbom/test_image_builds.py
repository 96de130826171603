"""Built-wheel facts read back from an image's ``LOCKSTEP_BUILT.json`` records: each good
record keyed by its sdist's sha256, a damaged one left out rather than half-believed."""

from __future__ import annotations

from spawner.image.buildrecords import built_entry, image_builds

GOOD = {
    "sdist": {"url": "http://127.0.0.1/files/demo-1.0.tar.gz", "sha256": "a" * 64},
    "wheel": {"file": "demo-1.0-py3-none-any.whl", "sha256": "b" * 64},
    "backend": "flit_core.buildapi",
    "source_date_epoch": 315532800,
}


def test_a_record_becomes_the_build_records_entry_for_the_platform():
    assert built_entry(GOOD, "linux-64") == {
        "platform": "linux-64",
        "name": "demo",
        "version": "1.0",
        "sdist_url": "http://127.0.0.1/files/demo-1.0.tar.gz",
        "sdist_sha256": "a" * 64,
        "wheel": "demo-1.0-py3-none-any.whl",
        "wheel_sha256": "b" * 64,
        "backend": "flit_core.buildapi",
    }


def test_damaged_records_are_left_out_and_good_ones_keyed_by_sdist_sha256():
    other = {
        **GOOD,
        "sdist": {"url": "x", "sha256": "c" * 64},
        "wheel": {"file": "other-2.0-py3-none-any.whl", "sha256": "d" * 64},
    }
    damaged = [
        {"_invalid": True},  # not JSON in the image (reader.read_layer)
        {**GOOD, "wheel": {"file": "not-a-wheel.txt", "sha256": "e" * 64}},
        {k: v for k, v in GOOD.items() if k != "backend"},
        {**GOOD, "sdist": None},
    ]
    found = image_builds([*damaged, GOOD, other], "linux-aarch64")
    assert sorted(found) == ["a" * 64, "c" * 64]
    assert found["c" * 64]["name"] == "other" and found["a" * 64]["platform"] == "linux-aarch64"
