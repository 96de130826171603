"""``lockstep verify``: does an image hold exactly the packages of its lock?"""

from __future__ import annotations

import json
from pathlib import Path

from spawner.errors import LockstepError
from spawner.labels import PROJECT


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="compare an image's installed packages with its lock",
        description="Read /opt/env/conda-meta and the files of IMAGE straight from its "
        "registry and compare them with the lock (name, version, build, sha256, file name, "
        "and each file's recorded sha256). Exit 0 when they agree, 1 when they differ. "
        "The image is always read afresh; the result is remembered, so promoting the same "
        "digest against the same lock need not read the image again.",
    )
    parser.add_argument("image", help="HOST[:PORT]/REPO@sha256:... or HOST[:PORT]/REPO:TAG")
    parser.add_argument(
        "--lock",
        metavar="FILE",
        help=f"lock to compare with (default: <environments_dir>/<{PROJECT} label>/conda-lock.yml)",
    )
    parser.add_argument("--platform", default="linux-64", help="lock platform (default linux-64)")
    parser.add_argument(
        "--no-files",
        action="store_true",
        help="compare package records only, not each file's sha256",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def _lock_path(args, settings, labels: dict) -> Path:
    if args.lock:
        return Path(args.lock)
    project = labels.get(PROJECT)
    if not project:
        raise LockstepError(f"{args.image} has no {PROJECT} label; name the lock with --lock FILE")
    return settings.project_dir(project) / "conda-lock.yml"


def run(args, settings) -> int:
    from spawner.verify.check import check_image

    found = check_image(
        settings,
        args.image,
        lambda labels: _lock_path(args, settings, labels),
        platform=args.platform,
        files=not args.no_files,
        reuse=False,
    )
    differences, lock = found.differences, found.lock
    if args.json:
        print(
            json.dumps(
                {
                    "image": found.reference,
                    "lock": str(lock),
                    "packages": found.packages,
                    "installed": found.installed,
                    "lock_hash_matches": found.same_lock,
                    "lock_note": found.lock_note,
                    "differences": [d.to_json() for d in differences],
                    "ok": not differences,
                },
                sort_keys=True,
            )
        )
    elif differences:
        print(f"{found.reference} differs from {lock} ({len(differences)} difference(s)):")
        for difference in differences:
            print(f"  {difference.describe()}")
    else:
        files = "" if args.no_files else ", every recorded file unchanged"
        print(f"ok: {found.reference} holds exactly the {found.packages} packages of {lock}{files}")
    if not args.json and not found.same_lock:
        print(f"note: {found.lock_note}")
    return 1 if differences else 0
