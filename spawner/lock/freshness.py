"""Is a lock current? The answer ``conda-lock lock --check-input-hash`` would give.

Guarantees: the verdict uses conda-lock's own spec parser and its accepted content hashes
(``condalock.accepted_hashes``), per platform the lock holds; it never raises for a lock
it can read: a spec it cannot find or parse gives ``current=None`` with the reason.
Finding the spec follows ``metadata.sources``; a source recorded as a foreign absolute
path (``/home/someone/...``) falls back to the file of the same name beside the lock,
then to the conventional names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from spawner.lock import condalock

CONVENTIONAL_SOURCES = (
    "environment.yml",
    "environment.yaml",
    "env.yml",
    "env.yaml",
    "pyproject.toml",
)


@dataclass(frozen=True)
class Freshness:
    """``current`` is True, False, or None when it cannot be told (``reasons`` say why)."""

    current: bool | None
    source: str | None
    reasons: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        return {True: "current", False: "stale", None: "unknown"}[self.current]


def find_sources(lock_path: Path, sources: Sequence[str]) -> list[Path]:
    """The spec files a lock was made from, as they sit beside it now."""
    folder = Path(lock_path).parent
    found: list[Path] = []
    for entry in sources:
        name = PureWindowsPath(entry).name if "\\" in entry else PurePosixPath(entry).name
        relative = (
            not PurePosixPath(entry).is_absolute() and not PureWindowsPath(entry).is_absolute()
        )
        for candidate in ((folder / entry) if relative else None, folder / name):
            if candidate is not None and candidate.is_file() and candidate not in found:
                found.append(candidate)
                break
    if not found:
        found = [folder / n for n in CONVENTIONAL_SOURCES if (folder / n).is_file()][:1]
    return found


def conda_lock_verdict(
    lockfile: Any, lock_spec: Any, platforms: Sequence[str], *, virtual_packages: Path | None
) -> list[str]:
    """Reasons conda-lock would re-solve ``platforms`` (empty: it would skip them all)."""
    reasons = []
    for platform in platforms:
        recorded = lockfile.metadata.content_hash.get(platform)
        if recorded is None or platform not in lockfile.metadata.platforms:
            reasons.append(f"{platform} is not locked")
        elif recorded not in condalock.accepted_hashes(
            lock_spec, platform, virtual_packages=virtual_packages
        ):
            reasons.append(
                f"{platform}: the spec changed since the lock was written (content hash differs)"
            )
    return reasons


def spec_freshness(lock_path: Path, lockfile: Any) -> Freshness:
    """Whether the spec beside ``lock_path`` still matches the lock, as conda-lock says."""
    sources = find_sources(lock_path, list(lockfile.metadata.sources))
    if not sources:
        looked = ", ".join(list(lockfile.metadata.sources) + list(CONVENTIONAL_SOURCES))
        return Freshness(None, None, (f"no source spec beside the lock (looked for {looked})",))
    shown = ", ".join(str(s) for s in sources)
    platforms = list(lockfile.metadata.platforms)
    try:
        declared = condalock.declared_platforms(sources)
        lock_spec = condalock.lock_specification(sources, platforms=platforms)
        reasons = conda_lock_verdict(
            lockfile,
            lock_spec,
            platforms,
            virtual_packages=condalock.virtual_package_file(Path(lock_path).parent),
        )
    except Exception as exc:  # noqa: BLE001 - any spec conda-lock cannot read
        return Freshness(
            None, shown, (f"conda-lock cannot read {shown}: {type(exc).__name__}: {exc}",)
        )
    missing = [p for p in declared if p not in platforms]
    if missing:
        reasons.append(f"the spec declares platform(s) {', '.join(missing)} the lock lacks")
    if reasons and any(s.name == "pyproject.toml" for s in sources):
        reasons.append(
            "note: PyPI names in pyproject.toml were mapped to conda names offline "
            "(as themselves); conda-lock uses its online mapping"
        )
    return Freshness(not reasons, shown, tuple(reasons))
