"""Which conda packages go in which image layer, and in which order.

Guarantees, pure and deterministic:

* one layer per package whenever the image has room, so a package's files give the
  same layer digest in every project that uses it (registries then store it once);
* layers ordered by how widely they are shared: python and everything it needs first,
  then the server stack (``server_packages`` and their dependencies), then the rest, each
  tier by name. Docker reuses a pulled layer only when every layer below it matches (the
  chain ID), so the common stack sits at the bottom;
* when there are more packages than ``slots``, the smallest packages outside the python
  tier are merged into one layer at the top, so the big shared layers keep their digests.

Nothing here touches the filesystem.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

CORE_ROOTS = ("python",)


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


def tiers(
    packages: Sequence[PackageInfo], *, server_packages: Sequence[str] = ()
) -> dict[str, int]:
    """Tier per package: 0 python's closure, 1 the server stack's, 2 everything else."""
    graph = {p.name: p.depends for p in packages}
    core = dependency_closure(CORE_ROOTS, graph)
    server = dependency_closure((spec_name(s) for s in server_packages), graph) - core
    return {p.name: 0 if p.name in core else 1 if p.name in server else 2 for p in packages}


def spec_name(spec: str) -> str:
    """The package name in a match spec such as ``jupyterhub-singleuser>=5``."""
    name = spec.strip().split("::")[-1]
    for stop in " =<>!~[;":
        name = name.split(stop, 1)[0]
    return name


def group_packages(
    packages: Sequence[PackageInfo], *, slots: int, server_packages: Sequence[str] = ()
) -> list[LayerGroup]:
    """Layer groups, bottom first, at most ``slots`` of them (see the module guarantees)."""
    if slots < 1:
        raise ValueError(
            f"no room for package layers (slots={slots}); raise c.Lockstep.layer_limit"
        )
    tier_of = tiers(packages, server_packages=server_packages)
    ordered = sorted(packages, key=lambda p: (tier_of[p.name], p.name))
    if len(ordered) <= slots:
        return [LayerGroup((p.name,), tier_of[p.name]) for p in ordered]
    merge_count = len(ordered) - slots + 1
    candidates = [p for p in ordered if tier_of[p.name] > 0] or list(ordered)
    by_size = sorted(candidates, key=lambda p: (p.size, p.name))
    if len(by_size) < merge_count:
        by_size = sorted(ordered, key=lambda p: (p.size, p.name))
    merged = {p.name for p in by_size[:merge_count]}
    groups = [LayerGroup((p.name,), tier_of[p.name]) for p in ordered if p.name not in merged]
    groups.append(LayerGroup(tuple(sorted(merged)), 3))
    return groups
