"""``lockstep inspect``: what a ``conda-lock.yml`` pins, and whether it is still current.

Guarantees: reads any lock conda-lock's own parser reads (v1 old and new layouts, v2,
pip entries with ``source: null``, many platforms) and never raises for one it can parse;
the currency verdict is conda-lock's (``freshness.spec_freshness``). ``build_report`` is
the only function here that reads files; the renderers are pure and sort their output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

from spawner.lock import condalock
from spawner.lock.freshness import Freshness, spec_freshness

ANACONDA = "https://conda.anaconda.org/"


@dataclass(frozen=True)
class PackageLine:
    name: str
    version: str
    build: str
    channel: str
    sha256: str
    manager: str
    url: str


@dataclass(frozen=True)
class LockReport:
    path: str
    platforms: tuple[str, ...]
    channels: tuple[str, ...]
    sources: tuple[str, ...]
    packages: Mapping[str, tuple[PackageLine, ...]]
    freshness: Freshness
    lockstep: Mapping[str, str]
    """``lockstep.*`` entries of ``metadata.custom_metadata`` (empty for foreign locks)."""


def package_channel(url: str, manager: str) -> str:
    """Where a package comes from: the channel URL for conda, the index host for pip."""
    if manager == "pip":
        host = urlparse(url).netloc
        return "pypi" if host in ("files.pythonhosted.org", "pypi.org") else host or url
    return url.rsplit("/", 2)[0]


def build_report(path: Path) -> LockReport:
    """Read ``path`` with conda-lock's parser and judge it against the spec beside it."""
    path = Path(path)
    lockfile = condalock.read_lockfile(path)
    by_platform: dict[str, list[PackageLine]] = {p: [] for p in lockfile.metadata.platforms}
    for dep in lockfile.package:
        by_platform.setdefault(dep.platform, []).append(
            PackageLine(
                name=dep.name,
                version=dep.version,
                build=condalock.locked_build(dep),
                channel=package_channel(dep.url, dep.manager),
                sha256=dep.hash.sha256 or "",
                manager=dep.manager,
                url=dep.url,
            )
        )
    custom = lockfile.metadata.custom_metadata or {}
    return LockReport(
        path=str(path),
        platforms=tuple(lockfile.metadata.platforms),
        channels=tuple(c.url for c in lockfile.metadata.channels),
        sources=tuple(lockfile.metadata.sources),
        packages={
            p: tuple(sorted(lines, key=lambda x: (x.manager, x.name)))
            for p, lines in sorted(by_platform.items())
        },
        freshness=spec_freshness(path, lockfile),
        lockstep={k: v for k, v in sorted(custom.items()) if k.startswith("lockstep.")},
    )


def report_json(report: LockReport) -> dict:
    """The report as plain JSON-ready data."""
    return {
        "path": report.path,
        "platforms": list(report.platforms),
        "channels": list(report.channels),
        "sources": list(report.sources),
        "status": report.freshness.status,
        "current": report.freshness.current,
        "source": report.freshness.source,
        "reasons": list(report.freshness.reasons),
        "lockstep": dict(report.lockstep),
        "packages": {
            platform: [asdict(line) for line in lines]
            for platform, lines in report.packages.items()
        },
        "counts": {
            platform: {
                "conda": sum(x.manager == "conda" for x in lines),
                "pip": sum(x.manager == "pip" for x in lines),
            }
            for platform, lines in report.packages.items()
        },
    }


def _short(channel: str) -> str:
    return channel[len(ANACONDA) :] if channel.startswith(ANACONDA) else channel


def report_text(report: LockReport) -> str:
    """The report as a human-readable listing."""
    fresh = report.freshness
    lines = [
        report.path,
        f"  platforms: {', '.join(report.platforms)}",
        f"  channels:  {', '.join(_short(c) for c in report.channels) or '(none)'}",
        f"  source:    {fresh.source or '(not found)'}",
        f"  status:    {fresh.status}"
        + (" (by conda-lock's content hash)" if fresh.current is not None else ""),
    ]
    lines += [f"    - {reason}" for reason in fresh.reasons]
    lines += [f"  {key}: {value or '(none)'}" for key, value in report.lockstep.items()]
    for platform, packages in report.packages.items():
        pip = [p for p in packages if p.manager == "pip"]
        lines.append("")
        lines.append(
            f"{platform}: {len(packages)} packages "
            f"({len(packages) - len(pip)} conda, {len(pip)} pip)"
        )
        rows = [("name", "version", "build", "channel", "manager", "sha256")]
        rows += [
            (p.name, p.version, p.build, _short(p.channel), p.manager, p.sha256 or "-")
            for p in packages
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        lines += [
            "  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1]
            for r in rows
        ]
        if pip:
            lines.append(
                f"  note: {len(pip)} pip package(s) above come from PyPI; `lockstep install` "
                "installs their wheels hash-checked (an sdist entry is refused)."
            )
    return "\n".join(lines) + "\n"
