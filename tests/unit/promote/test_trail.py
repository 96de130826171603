"""The audit trail: record format, append-only file under concurrency, trail queries."""

import json
import multiprocessing

from spawner.promote.trail import (
    AuditRecord,
    AuditTrail,
    GateResult,
    pointer_stack,
    promoter_of,
    rollback_target,
    utc_now,
)

A, B, C = ("sha256:" + c * 64 for c in "abc")


def rec(
    action="promote",
    to="qa",
    digest=A,
    previous=None,
    outcome="promoted",
    user="alice",
    project="forecast",
    frm="dev",
):
    return AuditRecord(
        time="2026-01-01T00:00:00.000Z",
        action=action,
        project=project,
        user=user,
        to_stage=to,
        outcome=outcome,
        digest=digest,
        from_stage=frm if action == "promote" else None,
        previous_digest=previous,
    )


def test_record_format_is_pinned():
    record = AuditRecord(
        time="2026-01-02T03:04:05.678Z",
        action="promote",
        project="forecast",
        user="alice",
        to_stage="qa",
        outcome="refused",
        digest=A,
        from_stage="dev",
        previous_digest=None,
        gates=(
            GateResult("verify", "passed", 1.25, "ok"),
            GateResult("notebooks", "failed", 3.5, "bad.ipynb failed"),
        ),
        message="gate notebooks failed: bad.ipynb failed; no stage was changed",
        seconds=4.9,
    )
    line = record.to_json()
    assert json.loads(line) == {
        "action": "promote",
        "approved_by": None,
        "authenticated": None,
        "bytes_moved": 0,
        "digest": A,
        "from_stage": "dev",
        "gates": [
            {"message": "ok", "name": "verify", "seconds": 1.25, "status": "passed"},
            {
                "message": "bad.ipynb failed",
                "name": "notebooks",
                "seconds": 3.5,
                "status": "failed",
            },
        ],
        "message": "gate notebooks failed: bad.ipynb failed; no stage was changed",
        "outcome": "refused",
        "prev": None,
        "previous_digest": None,
        "project": "forecast",
        "seconds": 4.9,
        "time": "2026-01-02T03:04:05.678Z",
        "to_stage": "qa",
        "user": "alice",
        "version": 1,
    }
    assert line.startswith('{"action":"promote","approved_by":null,')  # sorted, compact
    assert AuditRecord.from_json(line) == record


def test_utc_now_is_iso_utc():
    now = utc_now()
    assert now.endswith("Z") and now[10] == "T" and len(now) == 24


def _append_many(path, worker, count):
    trail = AuditTrail(path)
    for i in range(count):
        trail.append(rec(user=f"w{worker}-{i}", project="x" * 2000))  # lines > PIPE_BUF


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / "audit.jsonl"
    procs = [multiprocessing.Process(target=_append_many, args=(path, w, 50)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    records = AuditTrail(path).read()
    assert len(records) == 300
    assert {r.user for r in records} == {f"w{w}-{i}" for w in range(6) for i in range(50)}


def test_read_filters_by_project_and_skips_a_torn_last_line(tmp_path):
    trail = AuditTrail(tmp_path / "audit.jsonl")
    trail.append(rec(project="a"))
    trail.append(rec(project="b"))
    with open(trail.path, "a") as fh:
        fh.write('{"action": "prom')
    assert [r.project for r in trail.read()] == ["a", "b"]
    assert [r.project for r in trail.read("b")] == ["b"]
    assert AuditTrail(tmp_path / "none.jsonl").read() == []


def test_promoter_of_reads_the_last_successful_promotion():
    records = [rec(user="alice"), rec(user="bob", outcome="refused"), rec(to="prod", user="carol")]
    assert promoter_of(records, project="forecast", stage="qa", digest=A) == "alice"
    assert promoter_of(records, project="forecast", stage="qa", digest=B) is None


def test_pointer_stack_and_rollback_target():
    records = [
        rec(to="prod", digest=A, previous=None),
        rec(to="prod", digest=B, previous=A),
        rec(to="prod", digest=C, previous=B, outcome="refused"),  # did not move
        rec(to="prod", digest=C, previous=B),
        rec(to="qa", digest=A),  # other stage
    ]
    assert pointer_stack(records, project="forecast", stage="prod") == [A, B, C]
    assert rollback_target(records, project="forecast", stage="prod", current=C) == (B, "")
    records.append(rec(action="rollback", to="prod", digest=B, previous=C, outcome="rolled-back"))
    assert rollback_target(records, project="forecast", stage="prod", current=B) == (A, "")
    records.append(rec(action="rollback", to="prod", digest=A, previous=B, outcome="rolled-back"))
    target, why = rollback_target(records, project="forecast", stage="prod", current=A)
    assert target is None and "records no digest prod pointed at before" in why


def test_rollback_refuses_when_the_tag_was_moved_outside_lockstep():
    records = [rec(to="prod", digest=A), rec(to="prod", digest=B, previous=A)]
    target, why = rollback_target(records, project="forecast", stage="prod", current=C)
    assert target is None
    assert "someone moved the tag outside lockstep" in why
    assert rollback_target([], project="forecast", stage="prod", current=A)[1] == (
        "the audit trail records no promotion of forecast to prod"
    )


def test_first_promotion_remembers_what_was_there_before():
    records = [rec(to="qa", digest=B, previous=A)]
    assert rollback_target(records, project="forecast", stage="qa", current=B) == (A, "")
