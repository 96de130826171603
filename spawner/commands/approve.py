"""``lockstep approve``: list, approve or reject promotions to the last stage, on the hub.

Approvals exist only through the hub's lockstep service (``--hub URL``): it knows who the
caller is from their hub API token, refuses non-approvers (403) and anybody's own request,
and runs the promotion with its gates. Without a REQUEST it lists what waits. The local
single-admin mode has no approvals to decide: ``lockstep promote --approved-by`` there.
"""

from __future__ import annotations

import json

from spawner.promote.remote import HubService, add_hub_arguments


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "approve",
        help="approve or reject a pending promotion to the last stage (through the hub)",
        description="Approve (or --reject) REQUEST, a promotion to the last stage that a "
        "project member asked for, as the hub user of your API token. Without REQUEST, list "
        "the pending requests. Exit 0 when done, 1 when a gate refused, 2 on errors.",
    )
    parser.add_argument("project", help="project name")
    parser.add_argument("request", nargs="?", help="request id (listed without it)")
    parser.add_argument("--reject", action="store_true", help="reject instead of approve")
    parser.add_argument("--reason", default="", help="why (recorded with a rejection)")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    add_hub_arguments(parser, required=True)
    parser.set_defaults(func=run)


def list_requests(answer: dict) -> int:
    pending = answer.get("pending") or []
    if not pending:
        print(f"no promotion of {answer.get('project')} waits for an approver")
    for r in pending:
        print(f"{r['id']}  {r['from_stage']} -> {r['to_stage']}  {r['digest']}  "
              f"asked by {r['requested_by']} at {r['time']}")
    if pending and not answer.get("approver"):
        print(f"you are not an approver; approvers: {', '.join(answer.get('approvers') or [])}")
    return 0


def run(args, settings) -> int:
    from spawner.commands.promote import print_answer

    with HubService.from_args(args) as service:
        if not args.request:
            answer = service.call("GET", args.project, "approvals")
            if args.json:
                print(json.dumps(answer, sort_keys=True))
                return 0
            return list_requests(answer)
        verb = "reject" if args.reject else "approve"
        body = {"request": args.request, **({"reason": args.reason} if args.reject else {})}
        return print_answer(service.call("POST", args.project, verb, body), args.json)
