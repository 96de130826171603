"""The journal: whole lines under concurrent processes, torn lines, fsync, damaged lines."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os

import pytest

from spawner import journal
from spawner.promote.trail import AuditError, AuditTrail
from spawner.sessions import read_events

WRITERS, PER_WRITER = 6, 40
PAD = "x" * 9000  # each line is longer than PIPE_BUF and than one page


def _writer(path, worker: int, start) -> None:
    start.wait()
    for i in range(PER_WRITER):
        journal.append(path, {"worker": worker, "i": i, "pad": PAD})


def _reader(path, start, seen) -> None:
    """Read while the writers write; report how many lines were not whole records."""
    start.wait()
    bad = 0
    for _ in range(200):
        with open(path, "rb") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
            raw = handle.read()
        if raw and not raw.endswith(b"\n"):
            bad += 1
        bad += sum(journal.decode(line) is None for line in raw.split(b"\n")[:-1])
    seen.value = bad


def test_concurrent_processes_append_whole_lines(tmp_path):
    path = tmp_path / "j.jsonl"
    path.touch()
    start = multiprocessing.Event()
    seen = multiprocessing.Value("i", -1)
    procs = [multiprocessing.Process(target=_writer, args=(path, w, start))
             for w in range(WRITERS)]
    procs.append(multiprocessing.Process(target=_reader, args=(path, start, seen)))
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    assert seen.value == 0, "a reader under the shared lock saw a partial line"
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    lines = raw.decode().splitlines()
    assert len(lines) == WRITERS * PER_WRITER
    records = [json.loads(line) for line in lines]  # every line is one whole record
    assert {(r["worker"], r["i"]) for r in records} == {
        (w, i) for w in range(WRITERS) for i in range(PER_WRITER)}
    for w in range(WRITERS):  # each writer's lines stay in its own order
        assert [r["i"] for r in records if r["worker"] == w] == list(range(PER_WRITER))
    assert [e.data for e in journal.read(path)] == records


def test_line_format_is_compact_sorted_json(tmp_path):
    path = tmp_path / "j.jsonl"
    journal.append(path, {"b": 1, "a": [1, "é"]})
    assert path.read_bytes() == b'{"a":[1,"\\u00e9"],"b":1}\n'
    assert journal.encode({"b": 1, "a": None}) == '{"a":null,"b":1}'


def test_torn_last_line_is_skipped_then_dropped_by_the_next_append(tmp_path):
    path = tmp_path / "j.jsonl"
    journal.append(path, {"n": 1})
    whole = path.read_bytes()
    with open(path, "ab") as handle:
        handle.write(b'{"n": 2, "pad": "' + b"y" * 100_000)  # a writer died mid-line
    assert journal.read(path) == [journal.Entry(1, {"n": 1})]
    journal.append(path, {"n": 3})
    assert path.read_bytes() == whole + b'{"n":3}\n'  # the next record stays whole
    assert [e.data for e in journal.read(path)] == [{"n": 1}, {"n": 3}]


def test_a_last_line_missing_only_its_newline_is_kept(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"n":1}\n{"n":2}')  # hand-edited: no final newline
    assert [e.data for e in journal.read(path)] == [{"n": 1}, {"n": 2}]
    journal.append(path, {"n": 3})
    assert path.read_bytes() == b'{"n":1}\n{"n":2}\n{"n":3}\n'


def test_a_torn_line_as_the_only_content_is_dropped(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"n":')
    assert journal.read(path) == []
    journal.append(path, {"n": 1})
    assert path.read_bytes() == b'{"n":1}\n'


def test_fsync_is_called_on_the_journal_after_the_line_is_written(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "j.jsonl"
    synced: list[tuple[int, bytes | None]] = []
    real_fsync = os.fsync

    def spy(fd):
        is_file = os.path.samestat(os.fstat(fd), os.stat(path))
        synced.append((os.fstat(fd).st_ino, path.read_bytes() if is_file else None))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    journal.append(path, {"n": 1})
    file_ino, dir_ino = path.stat().st_ino, path.parent.stat().st_ino
    assert synced == [(file_ino, b'{"n":1}\n'), (dir_ino, None)]  # new file: folder too
    synced.clear()
    journal.append(path, {"n": 2})
    assert synced == [(file_ino, b'{"n":1}\n{"n":2}\n')]


def test_a_damaged_whole_line_names_the_line(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_bytes(b'{"n":1}\nnot json\n[1]\n{"n":2}\n')
    with pytest.raises(journal.JournalError, match=r"j.jsonl, line 2: not a journal record"):
        journal.read(path)
    assert journal.read(path, skip_corrupt=True) == [
        journal.Entry(1, {"n": 1}), journal.Entry(4, {"n": 2})]


def test_sessions_tolerate_and_the_trail_refuses_a_damaged_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"event":"start","id":"s1"}\n\x00\x01garbage\n')
    assert read_events(path) == [{"event": "start", "id": "s1"}]
    with pytest.raises(AuditError, match=r"line 2: not an audit record .*restore it from"):
        AuditTrail(path).read()


def test_missing_journal_reads_empty_and_unwritable_folder_raises_oserror(tmp_path):
    assert journal.read(tmp_path / "none.jsonl") == []
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError):
        journal.append(blocker / "j.jsonl", {"n": 1})
