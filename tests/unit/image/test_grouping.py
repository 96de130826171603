"""Package -> layer grouping: order and merging are pinned (no daemon)."""

from __future__ import annotations

import pytest

from spawner.image.grouping import PackageInfo, group_packages, spec_name, tiers

PKGS = [
    PackageInfo("zlib", 100, ()),
    PackageInfo("openssl", 5000, ()),
    PackageInfo("python", 90000, ("openssl", "zlib")),
    PackageInfo("tornado", 3000, ("python",)),
    PackageInfo("jupyterhub-singleuser", 10, ("tornado", "python")),
    PackageInfo("numpy", 40000, ("python",)),
    PackageInfo("attrs", 50, ("python",)),
]


def test_tiers():
    assert tiers(PKGS, server_packages=["jupyterhub-singleuser>=5"]) == {
        "zlib": 0,
        "openssl": 0,
        "python": 0,
        "tornado": 1,
        "jupyterhub-singleuser": 1,
        "numpy": 2,
        "attrs": 2,
    }


def test_one_layer_per_package_shared_stack_first():
    groups = group_packages(PKGS, slots=10, server_packages=["jupyterhub-singleuser"])
    assert [g.packages for g in groups] == [
        ("openssl",),
        ("python",),
        ("zlib",),
        ("jupyterhub-singleuser",),
        ("tornado",),
        ("attrs",),
        ("numpy",),
    ]


def test_input_order_does_not_matter():
    a = group_packages(PKGS, slots=4, server_packages=["jupyterhub-singleuser"])
    b = group_packages(list(reversed(PKGS)), slots=4, server_packages=["jupyterhub-singleuser"])
    assert a == b


def test_over_the_limit_merges_the_smallest_non_core_packages_last():
    groups = group_packages(PKGS, slots=4, server_packages=["jupyterhub-singleuser"])
    assert len(groups) == 4
    assert [g.packages for g in groups] == [
        ("openssl",),
        ("python",),
        ("zlib",),
        ("attrs", "jupyterhub-singleuser", "numpy", "tornado"),
    ]
    groups = group_packages(PKGS, slots=6, server_packages=["jupyterhub-singleuser"])
    assert groups[-1].packages == ("attrs", "jupyterhub-singleuser")
    assert groups[-1].label == "2 small packages"


def test_no_slots():
    with pytest.raises(ValueError, match="layer_limit"):
        group_packages(PKGS, slots=0)


@pytest.mark.parametrize(
    "spec, name",
    [
        ("jupyterhub-singleuser>=5", "jupyterhub-singleuser"),
        ("conda-forge::numpy 1.26.*", "numpy"),
        ("ipykernel", "ipykernel"),
        ("python=3.11", "python"),
    ],
)
def test_spec_name(spec, name):
    assert spec_name(spec) == name
