"""``lockstep inspect LOCKFILE``: list what a lock pins and whether it is current."""

from __future__ import annotations

import json
from pathlib import Path

from spawner.lock.report import build_report, report_json, report_text


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="list a conda-lock.yml's packages and say whether it is current",
        description=(
            "List platforms and packages (name, version, build, channel, manager, sha256) of a "
            "conda-lock.yml, and say whether the spec beside it still matches, as "
            "`conda-lock lock --check-input-hash` would."
        ),
    )
    parser.add_argument(
        "lockfile", metavar="LOCKFILE", help="conda-lock.yml, or the folder holding it"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a listing")
    parser.set_defaults(func=run)


def run(args, settings) -> int:
    path = Path(args.lockfile)
    if path.is_dir():
        path = path / "conda-lock.yml"
    report = build_report(path)
    if args.json:
        print(json.dumps(report_json(report), indent=2))
    else:
        print(report_text(report), end="")
    return 0
