"""``lockstep history``: the audit trail of promotions and rollbacks, as a table or JSON."""

from __future__ import annotations

COLUMNS = ("time", "action", "user", "stages", "digest", "previous", "outcome", "gates", "message")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "history",
        help="show every promotion and rollback attempt of a project",
        description="Show the audit trail (<data_dir>/audit.jsonl): who promoted or rolled "
        "back which digest, when, from and to which stage, the gate results and the outcome.",
    )
    parser.add_argument("project", nargs="?", help="project name (default: every project)")
    parser.add_argument("--stage", metavar="STAGE", help="only moves of STAGE")
    parser.add_argument("--json", action="store_true", help="one JSON record per line")
    parser.set_defaults(func=run)


def _short(digest: str | None) -> str:
    return digest.removeprefix("sha256:")[:12] if digest else "-"


def row(record) -> tuple[str, ...]:
    stages = f"{record.from_stage}->{record.to_stage}" if record.from_stage else record.to_stage
    gates = " ".join(f"{g.name}:{g.status}" for g in record.gates) or "-"
    return (
        record.time[:19].replace("T", " "),
        record.action,
        record.user,
        stages,
        _short(record.digest),
        _short(record.previous_digest),
        record.outcome,
        gates,
        record.message if record.outcome in ("refused", "failed") else "",
    )


def run(args, settings) -> int:
    from spawner.promote.core import trail_of

    records = trail_of(settings).read(args.project)
    if args.stage:
        records = [r for r in records if r.to_stage == args.stage]
    if args.json:
        for record in records:
            print(record.to_json())
        return 0
    rows = [COLUMNS] + [row(r) for r in records]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    for line in rows:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return 0
