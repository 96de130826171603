"""``lockstep install LOCKFILE PREFIX``: install a lock's conda packages into a prefix."""

from __future__ import annotations

import json
import sys
from pathlib import Path, PurePosixPath

from spawner.errors import LockstepError
from spawner.lock.install import install_lock
from spawner.progress import Progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "install",
        help="install a conda-lock.yml into a prefix, verifying every sha256",
        description=(
            "Install the conda packages a conda-lock.yml pins for one platform into PREFIX. "
            "Every archive's sha256 is checked against the lock; c.Lockstep.mirrors apply."
        ),
    )
    parser.add_argument(
        "lockfile", metavar="LOCKFILE", help="conda-lock.yml, or the project folder holding it"
    )
    parser.add_argument("prefix", metavar="PREFIX", help="folder to install into")
    parser.add_argument(
        "--platform",
        metavar="PLATFORM",
        help="which locked platform (default: the only one, else linux-64)",
    )
    parser.add_argument(
        "--as",
        dest="target_prefix",
        metavar="FINAL_PREFIX",
        help="install for use from FINAL_PREFIX (e.g. /opt/env): files land in PREFIX, "
        "paths inside them name FINAL_PREFIX",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON (and no progress)"
    )
    parser.set_defaults(func=run)


def run(args, settings) -> int:
    lockfile = Path(args.lockfile)
    if lockfile.is_dir():
        lockfile = lockfile / "conda-lock.yml"
    if args.target_prefix and not PurePosixPath(args.target_prefix).is_absolute():
        raise LockstepError(f"--as {args.target_prefix}: must be an absolute path, e.g. /opt/env")
    result = install_lock(
        lockfile,
        Path(args.prefix),
        platform=args.platform,
        target_prefix=args.target_prefix,
        mirrors=dict(settings.mirrors),
        cache_dir=settings.cache_path("pkgs"),
        progress=(progress := Progress(sys.stdout, quiet=args.json)),
        sdist_sandbox=settings.build_sandbox if settings.pip_allow_sdists else None,
    )
    progress.close()
    if args.json:
        print(json.dumps({
            "prefix": str(result.prefix), "platform": result.platform,
            "packages": list(result.packages), "downloaded": result.downloaded,
            "cached": result.cached, "seconds": round(result.seconds, 3)}, sort_keys=True))
        return 0
    print(
        f"{len(result.packages)} packages ({result.downloaded} fetched, {result.cached} "
        f"from cache) in {result.seconds:.2f} s"
    )
    return 0
