"""``lockstep sessions``: list the provenance log of notebook sessions."""

from __future__ import annotations

import json

from spawner.sessions import FILENAME, read_sessions

COLUMNS = ("id", "user", "project", "stage", "lock_hash", "digest", "start", "stop")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sessions",
        help="list recorded notebook sessions (who ran which digest, when)",
        description="List the session log: user, project, stage, image digest, lock hash, "
        "start and stop. Re-run a session's exact image with user_options "
        '{"session": "<id>"}.',
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--project", metavar="P", help="only sessions of project P")
    parser.add_argument("--user", metavar="U", help="only sessions of user U")
    parser.set_defaults(func=run)


def _short(column: str, value: str) -> str:
    if column == "digest":
        return value.removeprefix("sha256:")[:12]
    if column == "lock_hash":
        return value[:12]
    return value or ("running" if column == "stop" else "-")


def run(args, settings) -> int:
    sessions = read_sessions(settings.data_path(FILENAME), project=args.project, user=args.user)
    if args.json:
        for session in sessions:
            print(json.dumps(session.to_json(), sort_keys=True))
        return 0
    rows = [COLUMNS] + [tuple(_short(c, getattr(s, c)) for c in COLUMNS) for s in sessions]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0
