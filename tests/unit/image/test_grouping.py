"""Package -> layer grouping: the site-wide order and content-defined groups (no daemon)."""

from __future__ import annotations

import pytest

from spawner.image import grouping
from spawner.image.grouping import (
    LayerGroup,
    PackageInfo,
    group_packages,
    is_boundary,
    spec_name,
    tier_roots,
    tiers,
)

BIG = grouping.SOLO_BYTES
ROOTS = ("python", "jupyterhub-singleuser")
PKGS = [
    PackageInfo("zlib", 100, ()),
    PackageInfo("openssl", BIG + 5000, ()),
    PackageInfo("python", BIG * 30, ("openssl", "zlib")),
    PackageInfo("tornado", 3000, ("python",)),
    PackageInfo("jupyterhub-singleuser", 10, ("tornado", "python")),
    PackageInfo("numpy", BIG * 40, ("python",)),
    PackageInfo("attrs", 50, ("python",)),
]


def _names(groups: list[LayerGroup]) -> list[tuple[str, ...]]:
    return [g.packages for g in groups]


def _small(names, *, prefix="p") -> list[PackageInfo]:
    return [PackageInfo(f"{prefix}{i:03d}", 1000 + i, ("python",)) for i in names]


def _project(extra: list[PackageInfo]) -> list[PackageInfo]:
    return [*PKGS, *extra]


def _common_prefix(a, b) -> int:
    count = 0
    while count < min(len(a), len(b)) and a[count] == b[count]:
        count += 1
    return count


def test_tier_roots_default_to_python_then_the_server_packages():
    assert tier_roots(server_packages=["jupyterhub-singleuser>=5", "ipykernel"]) == (
        "python",
        "jupyterhub-singleuser",
        "ipykernel",
    )
    assert tier_roots(server_packages=["ipykernel"], layer_order=["python", "numpy", "python"]) == (
        "python",
        "numpy",
    )


def test_tiers_follow_the_roots_in_order():
    assert tiers(PKGS, roots=ROOTS) == {
        "zlib": 0,
        "openssl": 0,
        "python": 0,
        "tornado": 1,
        "jupyterhub-singleuser": 1,
        "numpy": 2,
        "attrs": 2,
    }
    # a site that shares numpy puts it in its own tier, before the project's own packages
    assert tiers(PKGS, roots=(*ROOTS, "numpy"))["numpy"] == 2
    assert tiers(PKGS, roots=(*ROOTS, "numpy"))["attrs"] == 3


def test_layer_order_is_pinned():
    """``zlib``, ``jupyterhub-singleuser`` and ``attrs`` hash to boundaries; big ones alone."""
    groups = group_packages(PKGS, slots=10, roots=ROOTS)
    assert _names(groups) == [
        ("openssl",),
        ("python",),
        ("zlib",),
        ("jupyterhub-singleuser",),
        ("tornado",),
        ("attrs",),
        ("numpy",),
    ]
    assert [g.tier for g in groups] == [0, 0, 0, 1, 1, 2, 2]
    extra = [PackageInfo("tzdata", 10, ()), PackageInfo("wheel", 10, ())]
    groups = group_packages(_project(extra), slots=10, roots=ROOTS)
    assert not is_boundary("tzdata") and not is_boundary("wheel")
    assert groups[-1].packages == ("tzdata", "wheel") and groups[-1].label == "2 small packages"
    assert groups[1].label == "python"


def test_input_order_does_not_matter():
    extra = _small(range(40))
    a = group_packages(_project(extra), slots=30, roots=ROOTS)
    b = group_packages(list(reversed(_project(extra))), slots=30, roots=ROOTS)
    assert a == b


def test_groups_end_at_content_defined_boundaries():
    groups = group_packages(_project(_small(range(200))), slots=500, roots=ROOTS)
    for group in groups:
        if group.tier == 2 and len(group.packages) > 1:
            inner = group.packages[:-1]
            assert not any(is_boundary(n) for n in inner), group
            assert is_boundary(group.packages[-1]) or group is groups[-1]
    sizes = [len(g.packages) for g in groups if g.tier == 2]
    assert 4 < sum(sizes) / len(sizes) < 12  # about BOUNDARY_ONE_IN a group, not one lump


@pytest.mark.parametrize(
    "added",
    [
        PackageInfo("p050x", 700, ("python",)),
        PackageInfo("p120x", BIG * 3, ("python",)),
        PackageInfo("a000", 10, ()),
        PackageInfo("zzz", 10, ()),
    ],
)
def test_adding_a_package_changes_only_its_group_and_those_above(added):
    before = group_packages(_project(_small(range(200))), slots=500, roots=ROOTS)
    after = group_packages(_project([*_small(range(200)), added]), slots=500, roots=ROOTS)
    at = next(i for i, g in enumerate(after) if added.name in g.packages)
    assert after[:at] == before[:at]  # every layer below keeps its digest and its chain
    # exactly one group changed: the run it joined (or none: it is a layer of its own)
    assert [g for g in after if g not in before] == [after[at]]
    gone = [g for g in before if g not in after]
    assert [set(g.packages) | {added.name} for g in gone] in ([], [set(after[at].packages)])
    assert len(after) - len(before) == 1 - len(gone)


def test_shared_prefix_is_the_shared_package_groups():
    """Two projects' layer lists agree exactly up to the first group they do not share."""
    base = _small(range(60))
    one = group_packages(_project([*base, *_small(range(5), prefix="q")]), slots=99, roots=ROOTS)
    two = group_packages(_project([*base, *_small(range(7), prefix="r")]), slots=99, roots=ROOTS)
    prefix = _common_prefix(one, two)
    assert prefix == len(set(one) & set(two)) > sum(1 for g in one if g.tier < 2)
    # a project with another's packages less its top ones: all but its last (unclosed) run
    fewer = group_packages(_project(base), slots=99, roots=ROOTS)
    assert one[: len(fewer) - 1] == fewer[:-1]


def test_over_the_limit_merges_the_top_groups_only():
    wide = group_packages(_project(_small(range(200))), slots=500, roots=ROOTS)
    narrow = group_packages(_project(_small(range(200))), slots=10, roots=ROOTS)
    assert len(narrow) == 10
    assert narrow[:9] == wide[:9]
    assert set(narrow[9].packages) == {n for g in wide[9:] for n in g.packages}


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
