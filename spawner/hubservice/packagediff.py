"""The package difference between two environments: added, removed and changed packages.

Both sides are lists of ``spawner.lock.package.LockedPackage`` (from a lock, or from an
image's ``conda-meta`` records), so a stage, a digest and a lock compare the same way. A
package is identified by its manager and name (``conda`` numpy and ``pip`` numpy are two
packages); it is *changed* when its version, build or archive sha256 differ.

Guarantees: pure (no file, network or clock), inputs untouched, output sorted by manager
then name, so the same two lists always give the same JSON. It is one dictionary pass over
each side: two 300-package locks diff in well under a millisecond (``benchmarks/service.py``).
It must not read images or locks: ``spawner.hubservice.images`` does that.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from spawner.lock.package import LockedPackage

COMPARED = ("version", "build", "sha256")
"""``LockedPackage`` attributes whose difference makes a package *changed*."""


@dataclass(frozen=True)
class Change:
    """One package on both sides, with something in ``COMPARED`` different."""

    before: LockedPackage
    after: LockedPackage

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for f in COMPARED if getattr(self.before, f) != getattr(self.after, f))


@dataclass(frozen=True)
class PackageDiff:
    """What ``after`` has that ``before`` has not, the reverse, and what changed."""

    added: tuple[LockedPackage, ...] = ()
    removed: tuple[LockedPackage, ...] = ()
    changed: tuple[Change, ...] = ()
    unchanged: int = 0

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def to_json(self) -> dict:
        return {
            "added": [package_json(p) for p in self.added],
            "removed": [package_json(p) for p in self.removed],
            "changed": [
                {"name": c.after.name, "manager": c.after.manager, "fields": list(c.fields),
                 "from": package_json(c.before), "to": package_json(c.after)}
                for c in self.changed
            ],
            "unchanged": self.unchanged,
        }


def package_json(package: LockedPackage) -> dict:
    """The fields of a package the API shows (no URL: it may name an internal mirror)."""
    return {"name": package.name, "manager": package.manager, "version": package.version,
            "build": package.build, "sha256": package.sha256}


def _key(package: LockedPackage) -> tuple[str, str]:
    return (package.manager, package.name.lower())


def diff_packages(before: Iterable[LockedPackage], after: Iterable[LockedPackage]) -> PackageDiff:
    """The difference from ``before`` to ``after``; a package listed twice keeps its last."""
    old = {_key(p): p for p in before}
    new = {_key(p): p for p in after}
    added, removed, changed, same = [], [], [], 0
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if a is None:
            added.append(b)
        elif b is None:
            removed.append(a)
        elif any(getattr(a, f) != getattr(b, f) for f in COMPARED):
            changed.append(Change(a, b))
        else:
            same += 1
    return PackageDiff(tuple(added), tuple(removed), tuple(changed), same)
