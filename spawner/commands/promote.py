"""``lockstep promote``: move the previous stage's digest to a stage, after its gates.

Two modes. With ``--hub URL`` the hub's lockstep service promotes for the caller's hub
identity (``spawner.promote.remote``; to the last stage it records a request an approver
decides with ``lockstep approve``). Without it, the local single-admin mode: this process
holds the registry credential and records ``"authenticated": false`` in the trail (the
user is ``--as`` or ``$USER``, the approver ``--approved-by``: nothing checks them).
"""

from __future__ import annotations

import sys

from spawner.errors import LockstepError
from spawner.promote.remote import HubService, add_hub_arguments

EXIT = {"promoted": 0, "unchanged": 0, "rolled-back": 0, "refused": 1, "failed": 2,
        "pending": 0, "rejected": 0}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "promote",
        help="promote a project's image to the next stage (gates, then a pointer move)",
        description="Point STAGE at the digest the stage before it holds, once the gates "
        "pass: verify (image == lock), the project's notebooks run in the image, and for the "
        "last stage an approval. Nothing is rebuilt; every attempt is audited. Exit 0 when "
        "the stage points at the digest, 1 when a gate refused, 2 on errors.",
    )
    parser.add_argument("project", help="project name (a folder of c.Lockstep.environments_dir)")
    parser.add_argument(
        "--to",
        required=True,
        metavar="STAGE",
        dest="stage",
        help="stage to promote to, e.g. qa (its predecessor is the source)",
    )
    parser.add_argument(
        "--digest",
        metavar="sha256:...",
        help="refuse unless the source stage holds exactly this digest",
    )
    parser.add_argument(
        "--model",
        metavar="sha256:...",
        help="refuse unless the source stage holds exactly this model (`lockstep model`); "
        "the stage's model always moves with its image",
    )
    parser.add_argument(
        "--as",
        dest="user",
        metavar="USER",
        help="acting user recorded in the audit trail (default: $USER)",
    )
    parser.add_argument(
        "--approved-by", metavar="USER", help="approver, needed to promote to the last stage"
    )
    parser.add_argument("--json", action="store_true", help="print the audit record as JSON")
    add_hub_arguments(parser)
    parser.set_defaults(func=run)


def print_record(record, as_json: bool) -> int:
    if as_json:
        print(record.to_json())
    else:
        for gate in record.gates:
            print(f"  gate {gate.name:<9} {gate.status:<7} {gate.seconds:7.2f} s  {gate.message}")
        stream = sys.stdout if EXIT.get(record.outcome, 2) == 0 else sys.stderr
        print(f"{record.outcome}: {record.message}", file=stream)
    return EXIT.get(record.outcome, 2)


def print_answer(answer: dict, as_json: bool) -> int:
    """Print the service's answer (a trail record, a request, or both); the exit code."""
    import json

    from spawner.promote.trail import AuditRecord

    outcome = answer.get("outcome", "failed")
    if as_json:
        print(json.dumps(answer, sort_keys=True))
        return EXIT.get(outcome, 2)
    if answer.get("record"):
        return print_record(AuditRecord.from_dict(answer["record"]), False)
    stream = sys.stdout if EXIT.get(outcome, 2) == 0 else sys.stderr
    print(f"{outcome}: {answer.get('message', '')}", file=stream)
    return EXIT.get(outcome, 2)


def refuse_local_names(args) -> None:
    given = [flag for flag, value in (("--as", getattr(args, "user", None)),
                                      ("--approved-by", getattr(args, "approved_by", None)))
             if value]
    if given:
        raise LockstepError(f"{' and '.join(given)} cannot be used with --hub: the hub says "
                            "who you are (your API token); approvers approve with "
                            "`lockstep approve PROJECT REQUEST --hub URL`")


def run(args, settings) -> int:
    from spawner.promote import promote

    if args.hub:
        refuse_local_names(args)
        if args.model:
            raise LockstepError("--model cannot be used with --hub yet: the service moves "
                                "the source stage's model with its image; check it with "
                                f"`lockstep model list {args.project}` first")
        body = {"to": args.stage, **({"digest": args.digest} if args.digest else {})}
        with HubService.from_args(args) as service:
            return print_answer(service.call("POST", args.project, "promote", body), args.json)

    progress = None if args.json else (lambda message: print(message, file=sys.stderr))
    record = promote(
        settings,
        args.project,
        args.stage,
        user=args.user,
        approved_by=args.approved_by,
        digest=args.digest,
        model=args.model,
        progress=progress,
    )
    return print_record(record, args.json)
