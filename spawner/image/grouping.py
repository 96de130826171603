"""Which conda packages go in which image layer, and in which order: one site-wide rule.

Docker and containerd reuse a pulled layer only when every layer below it is identical
(the chain ID), so two images share bytes on pull only up to their first differing layer.
The rule here makes that common prefix as long as the packages two projects share.

Guarantees, pure and deterministic (a function of the package set and the rule alone):

* **Tiers, most shared first.** ``roots`` is the site's ordered list of shared roots
  (``c.Lockstep.layer_order``; by default ``python`` then ``c.Lockstep.server_packages``).
  Tier ``i`` holds root ``i``'s dependency closure less the earlier tiers; a last tier
  holds everything else (the project's own packages). Packages are ordered by (tier, name).
* **Content-defined groups.** Walking that order, a package of ``SOLO_BYTES`` or more is
  a layer of its own; the smaller ones collect into a run that ends after a package whose
  name hashes to a boundary (about one in ``BOUNDARY_ONE_IN``) or at the end of a tier.
  Where a layer ends depends only on the packages in it, never on how many packages the
  image has or where they sit, so adding (or removing) a package changes exactly one group
  (the run it joins, or its own layer) and moves the layers above it; every layer below
  keeps its digest and its chain. Two projects' layer lists therefore agree up to the
  first group they do not share.
* **At most ``slots`` layers.** When there are more groups, the topmost ones (the most
  project-specific) are merged into one last layer; the layers below are unchanged.

Changing ``RULE``, ``SOLO_BYTES``, ``BOUNDARY_ONE_IN`` or the site's
``layer_order`` changes the layers and so every image digest; ``RULE`` is part of the
build's image key for that reason. Nothing here touches the filesystem.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

RULE = "tiers+content-defined-groups-2"  # 2: sizes without bytecode
CORE_ROOTS = ("python",)
SOLO_BYTES = 1 << 20  # installed bytes from which a package is a layer of its own
BOUNDARY_ONE_IN = 8  # about one small package in 8 ends a group


@dataclass(frozen=True)
class PackageInfo:
    """A package as the grouping needs it: name, installed bytes, dependency names."""

    name: str
    size: int
    depends: tuple[str, ...] = ()


@dataclass(frozen=True)
class LayerGroup:
    """The packages (by name) that share one layer, and the tier it came from."""

    packages: tuple[str, ...]
    tier: int

    @property
    def label(self) -> str:
        if len(self.packages) == 1:
            return self.packages[0]
        return f"{len(self.packages)} small packages"


def dependency_closure(roots: Iterable[str], graph: Mapping[str, Sequence[str]]) -> set[str]:
    """Every package reachable from ``roots`` (those present in ``graph``)."""
    seen: set[str] = set()
    todo = [r for r in roots if r in graph]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(d for d in graph.get(name, ()) if d in graph and d not in seen)
    return seen


def spec_name(spec: str) -> str:
    """The package name in a match spec such as ``jupyterhub-singleuser>=5``."""
    name = spec.strip().split("::")[-1]
    for stop in " =<>!~[;":
        name = name.split(stop, 1)[0]
    return name


def tier_roots(*, server_packages: Sequence[str] = (), layer_order: Sequence[str] = ()):
    """The ordered shared roots: ``layer_order`` when the site sets it, else python and the
    server packages; names only (match-spec versions dropped), first mention kept."""
    roots = layer_order or (*CORE_ROOTS, *server_packages)
    return tuple(dict.fromkeys(spec_name(r) for r in roots if spec_name(r)))


def tiers(packages: Sequence[PackageInfo], *, roots: Sequence[str]) -> dict[str, int]:
    """Tier per package: ``i`` for root ``i``'s closure (less earlier tiers), else the last."""
    graph = {p.name: p.depends for p in packages}
    tier_of: dict[str, int] = {}
    for index, root in enumerate(roots):
        for name in dependency_closure((spec_name(root),), graph):
            tier_of.setdefault(name, index)
    rest = len(roots)
    return {p.name: tier_of.get(p.name, rest) for p in packages}


def is_boundary(name: str) -> bool:
    """True when a group ends after ``name`` (a fixed property of the name alone)."""
    return hashlib.sha256(name.encode()).digest()[0] < 256 // BOUNDARY_ONE_IN


def _groups(ordered: Sequence[PackageInfo], tier_of: Mapping[str, int]) -> Iterator[LayerGroup]:
    """Content-defined groups in order; a big package is emitted as it comes and does not
    end the run of small ones around it (so adding one moves no other boundary)."""
    run: list[str] = []
    tier = None
    for package in ordered:
        if run and tier_of[package.name] != tier:
            yield LayerGroup(tuple(run), tier)
            run = []
        tier = tier_of[package.name]
        if package.size >= SOLO_BYTES:
            yield LayerGroup((package.name,), tier)
            continue
        run.append(package.name)
        if is_boundary(package.name):
            yield LayerGroup(tuple(run), tier)
            run = []
    if run:
        yield LayerGroup(tuple(run), tier)


def group_packages(
    packages: Sequence[PackageInfo], *, slots: int, roots: Sequence[str] = CORE_ROOTS
) -> list[LayerGroup]:
    """Layer groups, bottom first, at most ``slots`` of them (see the module guarantees)."""
    if slots < 1:
        raise ValueError(
            f"no room for package layers (slots={slots}); raise c.Lockstep.layer_limit"
        )
    tier_of = tiers(packages, roots=roots)
    ordered = sorted(packages, key=lambda p: (tier_of[p.name], p.name))
    groups = list(_groups(ordered, tier_of))
    if len(groups) <= slots:
        return groups
    top = groups[slots - 1 :]
    merged = LayerGroup(tuple(name for group in top for name in group.packages), top[0].tier)
    return [*groups[: slots - 1], merged]
