"""``lockstep rollback``: point a stage back at the digest it held before (audited)."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "rollback",
        help="point a stage back at its previous digest, from the audit trail",
        description="Undo the last move of STAGE: its tag is pointed back at the digest it "
        "held before, as the audit trail records it. Repeat to go further back.",
    )
    parser.add_argument("project", help="project name")
    parser.add_argument(
        "--stage", required=True, metavar="STAGE", help="stage to roll back, e.g. prod"
    )
    parser.add_argument("--as", dest="user", metavar="USER", help="acting user (default: $USER)")
    parser.add_argument("--json", action="store_true", help="print the audit record as JSON")
    parser.set_defaults(func=run)


def run(args, settings) -> int:
    from spawner.commands.promote import print_record
    from spawner.promote import rollback

    progress = None if args.json else (lambda message: print(message, file=sys.stderr))
    record = rollback(settings, args.project, args.stage, user=args.user, progress=progress)
    return print_record(record, args.json)
