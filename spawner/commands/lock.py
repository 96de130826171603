"""``lockstep lock PROJECT``: solve ``environment.yml`` into ``conda-lock.yml``.

``--check`` solves nothing: exit 0 when the lock is current, 1 when it is stale. Progress
(solving, packages per platform) goes to stdout, a live line on a terminal and one line per
step otherwise (``spawner.progress``); ``--json`` prints only the result as one JSON object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from spawner.errors import LockstepError
from spawner.lock.locking import LockInputs, check_lock, lock_environment
from spawner.progress import Progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "lock",
        help="solve a project's environment.yml into conda-lock.yml",
        description=(
            "Solve environments/<project>/environment.yml with rattler, adding the server "
            "packages (c.Lockstep.server_packages), and write conda-lock.yml beside it in "
            "conda-lock's format, so `conda-lock lock --check-input-hash` agrees it is current."
        ),
    )
    parser.add_argument(
        "project",
        metavar="PROJECT",
        help="project folder (environments/<project>), its environment.yml, or a project name",
    )
    parser.add_argument(
        "--platform",
        action="append",
        default=[],
        metavar="PLATFORM",
        help="platform to lock for when the spec has no platforms: key (repeatable; "
        "default c.Lockstep.platforms)",
    )
    parser.add_argument(
        "--channel-url",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="URL for a channel name, over c.Lockstep.channel_urls (repeatable), "
        "e.g. conda-forge=file:///srv/channels/conda-forge",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="solve nothing; exit 0 if conda-lock.yml is current, 1 if it is stale",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON (and no progress)"
    )
    parser.set_defaults(func=run)


def project_target(value: str, settings) -> Path:
    """A path as given, else the project of that name under ``environments_dir``."""
    path = Path(value)
    if path.exists():
        return path
    if "/" not in value and settings.project_dir(value).is_dir():
        return settings.project_dir(value)
    raise LockstepError(
        f"{value}: no such project folder or file; pass environments/<project> "
        f"(projects live in {settings.environments_dir})."
    )


def run(args, settings) -> int:
    target = project_target(args.project, settings)
    inputs = LockInputs.from_settings(
        settings, channel_url_args=args.channel_url, platform_args=args.platform
    )
    if args.check:
        verdict = check_lock(target, inputs)
        if verdict.current:
            print(f"current: {verdict.source} matches its conda-lock.yml")
            return 0
        print(f"stale: {'; '.join(verdict.reasons)}; run `lockstep lock {args.project}`")
        return 1
    progress = Progress(sys.stdout, quiet=args.json)
    result = lock_environment(target, inputs, progress=progress)
    progress.close()
    if args.json:
        print(json.dumps({
            "lock": str(result.lock_path), "platforms": list(result.platforms),
            "packages": dict(result.packages), "added": list(result.added),
            "seconds": round(result.seconds, 3)}, sort_keys=True))
    return 0
