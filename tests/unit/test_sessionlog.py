"""The incremental session log reader: only appended lines are parsed; a replaced or
shrunk file is read again; its answer always equals ``read_sessions``."""

from __future__ import annotations

import os

from spawner import journal
from spawner.sessions import (
    Session,
    SessionLog,
    append_event,
    read_sessions,
    start_event,
    stop_event,
)


def session(sid: str, user="alice") -> Session:
    return Session(id=sid, user=user, project="iris", stage="dev",
                   digest="sha256:" + "a" * 64, image="r/iris@sha256:" + "a" * 64,
                   start="2026-01-01T00:00:00Z")


def test_appended_events_are_folded_without_reading_the_file_again(tmp_path, monkeypatch):
    path = tmp_path / "sessions.jsonl"
    log = SessionLog(path)
    assert log.sessions() == []
    append_event(path, start_event(session("a")))
    append_event(path, start_event(session("b")))
    assert [s.id for s in log.sessions()] == ["a", "b"]
    offsets = []
    real = journal.read_from
    monkeypatch.setattr(journal, "read_from",
                        lambda p, offset=0: offsets.append(offset) or real(p, offset))
    append_event(path, stop_event(session("a"), "2026-01-02T00:00:00Z"))
    found = log.sessions()
    assert offsets == [path.stat().st_size - len(journal.encode(
        stop_event(session("a"), "2026-01-02T00:00:00Z"))) - 1]  # only the new line
    assert found == read_sessions(path) and found[0].stop == "2026-01-02T00:00:00Z"
    assert log.sessions() == found and len(offsets) == 1  # unchanged file: nothing read


def test_a_torn_line_waits_and_a_damaged_line_is_skipped(tmp_path):
    path = tmp_path / "sessions.jsonl"
    log = SessionLog(path)
    append_event(path, start_event(session("a")))
    with open(path, "a") as handle:
        handle.write("not json\n" + journal.encode(start_event(session("b")))[:20])
    assert [s.id for s in log.sessions()] == ["a"]
    append_event(path, start_event(session("c")))  # drops the torn bytes first
    assert [s.id for s in log.sessions()] == ["a", "c"] == [s.id for s in read_sessions(path)]


def test_a_replaced_or_shrunk_file_is_read_again(tmp_path):
    path = tmp_path / "sessions.jsonl"
    log = SessionLog(path)
    for sid in ("a", "b", "c"):
        append_event(path, start_event(session(sid)))
    assert len(log.sessions()) == 3
    other = tmp_path / "new.jsonl"
    append_event(other, start_event(session("z")))
    os.replace(other, path)  # a new inode
    assert [s.id for s in log.sessions()] == ["z"]
    path.write_text(journal.encode(start_event(session("y"))) + "\n")  # same inode, shorter
    assert [s.id for s in log.sessions()] == ["y"]
    path.unlink()
    assert log.sessions() == []
