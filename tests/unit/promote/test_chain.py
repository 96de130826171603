"""The audit trail's hash chain: every record names the canonical line before it; an
edited or deleted line is found, named, and stops promotion and rollback; trails written
before the chain keep working (the chain starts at the first hashed record)."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest

from spawner import journal
from spawner.promote.trail import AuditRecord, AuditTrail, TrailBroken, chain_break, link

A, B = ("sha256:" + c * 64 for c in "ab")


def rec(user="alice", to="qa", digest=A, **extra) -> AuditRecord:
    return AuditRecord(time="2026-01-01T00:00:00.000Z", action="promote", project="forecast",
                       user=user, to_stage=to, outcome="promoted", digest=digest,
                       from_stage="dev", **extra)


def lines(path) -> list[str]:
    return path.read_text().splitlines()


def test_each_record_carries_the_sha256_of_the_canonical_line_before_it(tmp_path):
    trail = AuditTrail(tmp_path / "audit.jsonl")
    first = trail.append(rec(user="alice"))
    second = trail.append(rec(user="bob"))
    raw = lines(trail.path)
    assert first.prev == "" and json.loads(raw[0])["prev"] == ""
    assert second.prev == "sha256:" + hashlib.sha256(raw[0].encode()).hexdigest()
    assert json.loads(raw[1])["prev"] == second.prev
    trail.check()  # whole
    assert [r.user for r in trail.read(verify=True)] == ["alice", "bob"]


def test_a_hand_edited_line_is_named_and_refused(tmp_path):
    trail = AuditTrail(tmp_path / "audit.jsonl")
    for user in ("alice", "bob", "carol"):
        trail.append(rec(user=user))
    raw = lines(trail.path)
    raw[1] = raw[1].replace('"user":"bob"', '"user":"mallory"')
    trail.path.write_text("\n".join(raw) + "\n")
    with pytest.raises(TrailBroken) as err:
        trail.read(verify=True)
    assert err.value.line == 3
    text = str(err.value)
    assert "line 3" in text and "restore audit.jsonl from a backup" in text
    assert "no stage was changed" in text
    assert [r.user for r in trail.read()] == ["alice", "mallory", "carol"]  # plain reads work


def test_a_deleted_line_and_a_stripped_hash_are_found(tmp_path):
    trail = AuditTrail(tmp_path / "audit.jsonl")
    for user in ("alice", "bob", "carol"):
        trail.append(rec(user=user))
    raw = lines(trail.path)
    trail.path.write_text("\n".join([raw[0], raw[2]]) + "\n")
    assert trail.read() and pytest.raises(TrailBroken, trail.check).value.line == 2
    stripped = json.loads(raw[2])
    del stripped["prev"]
    trail.path.write_text("\n".join([raw[0], raw[1], journal.encode(stripped)]) + "\n")
    with pytest.raises(TrailBroken, match="carries no hash"):
        trail.check()
    trail.path.write_text("\n".join(raw[1:]) + "\n")  # the first line deleted
    with pytest.raises(TrailBroken, match="no longer in the file"):
        trail.check()


def test_an_old_trail_without_hashes_starts_its_chain_at_the_first_hashed_record(tmp_path):
    path = tmp_path / "audit.jsonl"
    old = [{k: v for k, v in rec(user=u).to_dict().items() if k not in ("prev", "authenticated")}
           for u in ("old1", "old2")]
    path.write_text("".join(journal.encode(d) + "\n" for d in old))
    trail = AuditTrail(path)
    trail.check()
    new = trail.append(rec(user="new"))
    assert new.prev == link(old[1])
    trail.check()
    assert [r.user for r in trail.read(verify=True)] == ["old1", "old2", "new"]
    assert trail.read()[0].authenticated is None and trail.read()[0].prev is None
    path.write_text(path.read_text().replace("old2", "evil"))  # the linked old line
    assert pytest.raises(TrailBroken, trail.check).value.line == 3


def test_chain_break_is_pure_and_accepts_an_empty_trail():
    assert chain_break([]) is None
    first = {"a": 1, "prev": ""}
    second = {"a": 2, "prev": link(first)}
    assert chain_break([journal.Entry(1, first), journal.Entry(2, second)]) is None
    assert chain_break([journal.Entry(1, first), journal.Entry(2, {"a": 2, "prev": ""})])[0] == 2


def test_concurrent_appends_chain_in_file_order(tmp_path):
    trail = AuditTrail(tmp_path / "audit.jsonl")
    workers = [threading.Thread(target=lambda w=w: [trail.append(rec(user=f"{w}-{i}"))
                                                    for i in range(25)]) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(trail.read(verify=True)) == 100


def test_promote_and_rollback_refuse_a_broken_trail_before_any_registry_read(tmp_path):
    from traitlets.config import Config

    from spawner.promote.core import promote, rollback
    from spawner.settings import Lockstep

    config = Config()
    config.Lockstep.data_dir = str(tmp_path)
    config.Lockstep.registry = "127.0.0.1:9/nothing"  # never asked: the chain check is first
    settings = Lockstep(config=config)
    trail = AuditTrail(tmp_path / "audit.jsonl")
    for user in ("alice", "bob"):
        trail.append(rec(user=user))
    edited = trail.path.read_text().replace('"user":"alice"', '"user":"eve"')
    trail.path.write_text(edited)
    with pytest.raises(TrailBroken, match="line 2"):
        promote(settings, "forecast", "qa", gates=())
    with pytest.raises(TrailBroken, match="line 2"):
        rollback(settings, "forecast", "prod")
    assert trail.path.read_text() == edited  # nothing appended
