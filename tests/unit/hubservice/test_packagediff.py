"""The package diff: added, removed and changed, conda and pip kept apart, sorted, fast."""

from __future__ import annotations

import time

from spawner.hubservice.packagediff import diff_packages
from tests.unit.hubservice.servicedata import locks, package


def test_added_removed_changed_and_unchanged():
    before = [package("numpy", "1.26"), package("pandas", "2.1"), package("scipy", "1.11")]
    after = [package("numpy", "2.0"), package("pandas", "2.1"), package("polars", "1.0")]
    diff = diff_packages(before, after)
    assert [p.name for p in diff.added] == ["polars"]
    assert [p.name for p in diff.removed] == ["scipy"]
    assert [(c.before.version, c.after.version) for c in diff.changed] == [("1.26", "2.0")]
    assert diff.changed[0].fields == ("version", "sha256")
    assert diff.unchanged == 1
    data = diff.to_json()
    assert data["changed"][0]["from"]["version"] == "1.26"
    assert data["changed"][0]["to"]["version"] == "2.0"
    assert "url" not in data["added"][0]


def test_a_rebuild_of_the_same_version_is_a_change():
    diff = diff_packages([package("zlib", "1.3", "h0_0")], [package("zlib", "1.3", "h1_1")])
    assert diff.changed[0].fields == ("build", "sha256")


def test_conda_and_pip_packages_of_one_name_are_two_packages():
    before = [package("numpy", "1.26"), package("numpy", "1.26", manager="pip")]
    after = [package("numpy", "1.26")]
    diff = diff_packages(before, after)
    assert [(p.manager, p.name) for p in diff.removed] == [("pip", "numpy")]
    assert diff.unchanged == 1 and not diff.changed


def test_identical_lists_are_empty_and_output_is_sorted():
    before, after = locks(50)
    assert diff_packages(before, before).empty
    diff = diff_packages(list(reversed(before)), list(reversed(after)))
    assert diff.to_json() == diff_packages(before, after).to_json()
    names = [p.name for p in diff.added]
    assert names == sorted(names)


def test_two_300_package_locks_diff_within_50_ms():
    before, after = locks(300)
    began = time.perf_counter()
    diff = diff_packages(before, after)
    diff.to_json()
    assert time.perf_counter() - began < 0.05
    assert (len(diff.added), len(diff.removed), len(diff.changed)) == (10, 10, 20)
