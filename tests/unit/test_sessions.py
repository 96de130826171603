"""Session log: append-only, folded by id, torn lines tolerated; the CLI lists it."""

from __future__ import annotations

import json
import threading

import pytest

from spawner import cli
from spawner.sessions import (
    Session,
    SessionError,
    append_event,
    find_session,
    read_sessions,
    start_event,
    stop_event,
)


def session(sid: str, user="alice", project="iris") -> Session:
    return Session(id=sid, user=user, project=project, stage="dev",
                   digest="sha256:" + "a" * 64, image="r/iris@sha256:" + "a" * 64,
                   lock_hash="l" * 64, server_name="", container_id="c1",
                   start="2026-01-01T00:00:00Z")


def test_start_stop_fold(tmp_path):
    log = tmp_path / "sessions.jsonl"
    append_event(log, start_event(session("s1")))
    append_event(log, start_event(session("s2", user="bob", project="wine")))
    append_event(log, stop_event(session("s1"), "2026-01-01T01:00:00Z"))
    got = read_sessions(log)
    assert [(s.id, s.stop) for s in got] == [("s1", "2026-01-01T01:00:00Z"), ("s2", "")]
    assert [s.id for s in read_sessions(log, project="wine")] == ["s2"]
    assert [s.id for s in read_sessions(log, user="alice")] == ["s1"]
    assert find_session(log, "s2").user == "bob"
    with pytest.raises(SessionError, match="lockstep sessions"):
        find_session(log, "nope")


def test_append_only_never_rewrites(tmp_path):
    log = tmp_path / "sessions.jsonl"
    append_event(log, start_event(session("s1")))
    first = log.read_bytes()
    append_event(log, stop_event(session("s1"), "t"))
    assert log.read_bytes().startswith(first)


def test_torn_line_skipped(tmp_path):
    log = tmp_path / "sessions.jsonl"
    append_event(log, start_event(session("s1")))
    with open(log, "a") as fh:
        fh.write('{"event": "start", "id": "s2"')  # crash mid-write
    assert [s.id for s in read_sessions(log)] == ["s1"]


def test_concurrent_appends_stay_whole_lines(tmp_path):
    log = tmp_path / "sessions.jsonl"
    threads = [threading.Thread(target=lambda i=i: [
        append_event(log, start_event(session(f"t{i}-{j}"))) for j in range(50)])
        for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = log.read_text().splitlines()
    assert len(lines) == 400 and all(json.loads(line)["event"] == "start" for line in lines)


def test_cli_lists_sessions(tmp_path, capsys, monkeypatch):
    config = tmp_path / "lockstep_config.py"
    config.write_text(f"c.Lockstep.data_dir = {str(tmp_path)!r}\n")
    append_event(tmp_path / "sessions.jsonl", start_event(session("s1")))
    append_event(tmp_path / "sessions.jsonl", start_event(session("s2", user="bob")))
    assert cli.main(["--config", str(config), "sessions", "--json", "--user", "bob"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == ["s2"]
    assert cli.main(["--config", str(config), "sessions"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["id", "user", "project", "stage", "lock_hash", "digest", "start",
                              "stop"]
    assert "running" in out[1] and "aaaaaaaaaaaa" in out[1]
