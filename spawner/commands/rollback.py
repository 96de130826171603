"""``lockstep rollback``: point a stage back at the digest it held before (audited).

With ``--hub URL`` the hub's lockstep service rolls back for the caller's hub identity
(the last stage: approvers only); without it, the local single-admin mode
(``"authenticated": false`` in the trail). Either way a broken trail hash chain refuses.
"""

from __future__ import annotations

import sys

from spawner.promote.remote import HubService, add_hub_arguments


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
    add_hub_arguments(parser)
    parser.set_defaults(func=run)


def run(args, settings) -> int:
    from spawner.commands.promote import print_answer, print_record, refuse_local_names
    from spawner.promote import rollback

    if args.hub:
        refuse_local_names(args)
        with HubService.from_args(args) as service:
            answer = service.call("POST", args.project, "rollback", {"stage": args.stage})
        return print_answer(answer, args.json)

    progress = None if args.json else (lambda message: print(message, file=sys.stderr))
    record = rollback(settings, args.project, args.stage, user=args.user, progress=progress)
    return print_record(record, args.json)
