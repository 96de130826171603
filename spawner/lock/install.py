"""``install_lock``: put a ``conda-lock.yml`` into a prefix, every archive verified.

Guarantees: each archive is fetched (through ``c.Lockstep.mirrors``) into a
content-addressed cache and its sha256 checked against the lock before rattler sees it,
``file://`` ones included; rattler links from those verified files in the worker
subprocess, with link scripts off; ``target_prefix`` (``--as``) makes files land in
``prefix`` but read as if installed at ``target_prefix`` (how image builds stage
``/opt/env``); ``conda-meta/*.json`` keeps the lock's URL for each package, not the cache
path. Installing the same lock twice is a no-op link. pip entries are installed after the
conda packages, hash-checked and without dependency resolution (``pipinstall``: wheels
unpacked by lockstep, no pip run); a pip entry that is not a wheel is refused before
anything is fetched, unless the caller passes ``sdist_sandbox`` (the site allows sdists):
then it is built into a wheel in the build sandbox (``pipbuild``).
Every lock field that reaches a path or URL is checked when the lock is read
(``policy.check_lock_fields``) and, given the site's ``ChannelPolicy``, every package's
channel is checked, all before the first archive is fetched or the prefix is created.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spawner.errors import LockstepError
from spawner.lock import condalock
from spawner.lock.fetch import Archive, fetch_archives
from spawner.lock.pipinstall import Wheel, install_wheels
from spawner.lock.pipwheels import WHEEL_NAME_RE
from spawner.lock.policy import ChannelPolicy
from spawner.lock.runner import WorkerError, run_worker
from spawner.progress import Counter, human_bytes

INSTALLED_CATEGORIES = frozenset({"main", "dev"})
"""What ``conda-lock install`` installs by default; lockstep locks only have ``main``."""


@dataclass(frozen=True)
class InstallResult:
    """What ``install_lock`` did."""

    prefix: Path
    target_prefix: str
    platform: str
    packages: tuple[str, ...]
    """``name=version=build`` for every package installed, sorted."""
    downloaded: int
    """Archives fetched (or copied from a ``file://`` channel) into the cache this time."""
    cached: int
    """Archives already in the cache (re-verified)."""
    seconds: float


def default_platform(lockfile: Any, *, source: str) -> str:
    """The lock's only platform, else ``linux-64`` (images are linux-64) when it has it."""
    platforms = list(lockfile.metadata.platforms)
    if len(platforms) == 1:
        return platforms[0]
    if "linux-64" in platforms:
        return "linux-64"
    raise LockstepError(
        f"{source}: locks several platforms ({', '.join(platforms)}); choose one with --platform."
    )


def select_archives(lockfile: Any, platform: str, *, source: str) -> list[Archive]:
    """The conda archives to install for ``platform``; refuses pip entries."""
    if platform not in lockfile.metadata.platforms:
        raise LockstepError(
            f"{source}: has no packages for {platform}; it locks "
            f"{', '.join(lockfile.metadata.platforms)}. Pass one of those with --platform, or "
            f"re-lock with `lockstep lock --platform {platform}`."
        )
    chosen = [
        p
        for p in lockfile.package
        if p.platform == platform and p.categories & INSTALLED_CATEGORIES
    ]
    return [
        Archive(
            name=p.name,
            version=p.version,
            build=condalock.locked_build(p),
            url=p.url,
            sha256=p.hash.sha256 or "",
            md5=p.hash.md5 or "",
        )
        for p in chosen
        if p.manager == "conda"
    ]


def select_wheels(lockfile: Any, platform: str, *, source: str,
                  sdists: bool = False) -> list[Wheel]:
    """The ``manager: pip`` entries for ``platform``; refuses a source distribution entry
    unless ``sdists`` (the site allows them and they are built in the build sandbox)."""
    wheels = [
        Wheel(name=p.name, version=p.version, url=p.url, sha256=p.hash.sha256 or "")
        for p in lockfile.package
        if p.platform == platform and p.manager == "pip" and p.categories & INSTALLED_CATEGORIES
    ]
    refused = [w for w in wheels if not WHEEL_NAME_RE.match(w.filename)]
    if refused and not sdists:
        shown = ", ".join(f"{w.name}=={w.version} ({w.filename})" for w in refused[:5])
        raise LockstepError(
            f"{source}: pip package(s) {shown} for {platform} are source distributions, "
            "which lockstep builds only where the site allows them (c.Lockstep."
            "pip_allow_sdists = True: built in the build sandbox). Pin versions with a wheel "
            "for this platform, or use the conda packages, and re-lock with `lockstep lock`."
            " Nothing was installed."
        )
    return wheels


def install_lock(
    lockfile: Path,
    prefix: Path,
    *,
    platform: str | None,
    target_prefix: str | None = None,
    mirrors: Mapping[str, str] | None = None,
    cache_dir: Path,
    progress: Callable[[str], None] | None = None,
    timeout: float = 1800,
    channels: ChannelPolicy | None = None,
    sdist_sandbox: str | None = None,
) -> InstallResult:
    """Install ``lockfile``'s packages for ``platform`` into ``prefix``.

    Parameters
    ----------
    lockfile : conda-lock.yml to install (v1 or v2 layout).
    prefix : folder the files land in (created if missing).
    platform : which of the lock's platforms, e.g. ``"linux-64"``; None picks the lock's
        only platform, else linux-64 (``default_platform``).
    target_prefix : final location the environment will be used from (``/opt/env``), or
        None for ``prefix`` itself.
    mirrors : URL prefix -> replacement prefix, applied when fetching (``c.Lockstep.mirrors``).
    cache_dir : package cache (``settings.cache_path("pkgs")``); verified archives go in
        ``cache_dir/archives``, rattler's extracted packages beside them.
    progress : called with one line of text per step.
    channels : the site's ``ChannelPolicy``; a package from a channel it does not allow is
        refused before anything is fetched. None skips that check (fields are always checked).
    sdist_sandbox : the site's ``build_sandbox`` when it allows sdists: pip sdists are then
        built there into wheels (``pipbuild``); None refuses a lock holding one.
    """
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    lockfile, prefix, cache_dir = Path(lockfile), Path(prefix), Path(cache_dir)
    model = condalock.read_lockfile(lockfile)
    platform = platform or default_platform(model, source=str(lockfile))
    archives = select_archives(model, platform, source=str(lockfile))
    wheels = select_wheels(model, platform, source=str(lockfile),
                           sdists=sdist_sandbox is not None)
    if channels is not None:
        channels.check_packages(
            [p for p in model.package if p.platform == platform], source=str(lockfile)
        )
    say(f"verifying {len(archives)} archives for {platform}...")
    fetched = fetch_archives(archives, cache_dir=cache_dir, mirrors=dict(mirrors or {}),
                             on_done=fetch_counter(progress, len(archives)))
    say(fetched_line(fetched))
    prefix.mkdir(parents=True, exist_ok=True)
    request = {
        "op": "install",
        "prefix": str(prefix.resolve()),
        "target_prefix": target_prefix,
        "platform": platform,
        "cache_dir": str(cache_dir.resolve()),
        "packages": [
            {
                "archive": str(f.path.resolve()),
                "channel": f.archive.url.rsplit("/", 2)[0],
                "sha256": f.archive.sha256,
                "md5": f.archive.md5,
            }
            for f in fetched
        ],
    }
    try:
        run_worker(request, progress=say, timeout=timeout)
    except WorkerError as exc:
        raise LockstepError(f"installing {lockfile} into {prefix} failed: {exc}") from None
    record_lock_urls(prefix, archives)
    if wheels:
        say(f"installing {len(wheels)} pip packages (hash-checked, no dependencies)...")
        install_wheels(wheels, prefix, target_prefix=target_prefix or str(prefix.resolve()),
                       cache_dir=cache_dir, mirrors=dict(mirrors or {}), sandbox=sdist_sandbox,
                       progress=progress)
    say(
        f"installed {len(archives)} packages into {prefix}"
        + (f" (for {target_prefix})" if target_prefix else "")
    )
    return InstallResult(
        prefix=prefix,
        target_prefix=target_prefix or str(prefix),
        platform=platform,
        packages=tuple(sorted(f"{a.name}={a.version}={a.build}" for a in archives))
        + tuple(f"pypi:{w.name}=={w.version}" for w in sorted(wheels, key=lambda w: w.name)),
        downloaded=sum(f.downloaded for f in fetched),
        cached=sum(not f.downloaded for f in fetched),
        seconds=time.perf_counter() - started,
    )


def record_lock_urls(prefix: Path, archives: list[Archive]) -> None:
    """Point each ``conda-meta`` record at the lock's URL rather than the local cache."""
    for archive in archives:
        meta = prefix / "conda-meta" / f"{archive.name}-{archive.version}-{archive.build}.json"
        if not meta.is_file():
            continue
        data = json.loads(meta.read_text())
        if data.get("url") != archive.url:
            data["url"] = archive.url
            meta.write_text(json.dumps(data, indent=2))


def fetch_counter(progress, total: int):
    """Live "fetching N/M packages, X MB" for ``fetch_archives``' ``on_done``."""
    counter = Counter(progress, "fetching", total)
    return lambda done: counter.add(done.path.stat().st_size if done.downloaded else 0)


def fetched_line(fetched) -> str:
    """The step line that ends fetching: how many were downloaded (bytes) or cached."""
    down = [f for f in fetched if f.downloaded]
    size = sum(f.path.stat().st_size for f in down)
    return (f"fetched {len(fetched)} packages: {len(down)} downloaded ({human_bytes(size)}), "
            f"{len(fetched) - len(down)} from the cache")
