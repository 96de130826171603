"""One append-only JSON-lines journal: the session log and the promotion trail both use it.

A journal is a file of JSON objects, one a line, with sorted keys and no spaces
(``encode``). ``append`` adds one line and ``read`` returns every whole line; nothing
else writes the file.

Guarantees:

- *Atomic appends.* ``append`` holds an exclusive ``fcntl.flock`` on the file while it
  writes its line with ``O_APPEND`` and ``fsync``s it, so lines from concurrent writers
  (threads or processes, of any length) never interleave, and a line ``append`` returned
  for is on disk. A newly created file's folder is ``fsync``ed too.
- *Linked appends.* ``append_linked`` builds the new record from the last whole line
  while it holds the exclusive lock, so a record that names its predecessor (the
  promotion trail's hash chain) always names the line it really follows.
- *Consistent reads.* ``read`` holds a shared lock while it reads, so it never sees half
  of a line that is being written.
- *Crash tolerance.* A writer killed mid-write leaves a *torn* last line (no newline).
  ``read`` skips it; the next ``append`` drops those bytes before writing, so a torn line
  never swallows the record after it. These bytes were never acknowledged nor returned
  by a reader; they are the only bytes a journal ever removes. A last line that only
  lacks its newline (a hand edit) is a whole record: it is kept and terminated.

It must not: rewrite or reorder whole lines, hold a lock across more than one call,
know what the records mean (that is ``spawner.sessions`` and ``spawner.promote.trail``),
or swallow an ``OSError``: callers word their own message for those.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from spawner.errors import LockstepError

TAIL_CHUNK = 64 * 1024


class JournalError(LockstepError):
    """A whole line of a journal that is not a JSON object (the file was edited or damaged)."""

    def __init__(self, path: Path, line: int, reason: str):
        self.path, self.line, self.reason = Path(path), line, reason
        super().__init__(
            f"{path}, line {line}: not a journal record ({reason}); the file is append-only "
            "and only lockstep writes it: restore it from backup, or delete that line"
        )


class Entry(NamedTuple):
    """One record of a journal and the (1-based) line it was read from."""

    line: int
    data: dict[str, Any]


def encode(record: Mapping[str, Any]) -> str:
    """The journal form of ``record``: compact JSON with sorted keys, no newline. Pure."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def decode(raw: bytes) -> dict[str, Any] | None:
    """The object on one line, or None when the line is not a JSON object. Pure."""
    try:
        data = json.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
        return None
    return data if isinstance(data, dict) else None


def append(path: Path, record: Mapping[str, Any], *, mode: int = 0o640) -> None:
    """Append ``record`` as one line, under an exclusive lock, and ``fsync`` it.

    ``mode`` is the permission of a file this call creates. An ``OSError`` (a folder that
    cannot be created, a full disk) reaches the caller unchanged.
    """
    append_linked(path, lambda _last: record, mode=mode)


def append_linked(
    path: Path, build: Callable[[bytes | None], Mapping[str, Any]], *, mode: int = 0o640
) -> dict[str, Any]:
    """Append ``build(last)`` as one line, where ``last`` is the journal's last whole line
    (bytes without its newline; None for an empty journal), read under the same exclusive
    lock as the write. Returns the record written; ``build`` must not touch the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _seal_tail(fd)
        record = dict(build(_last_line(fd)))
        _write_all(fd, (encode(record) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)
    return record


def read(path: Path, *, skip_corrupt: bool = False) -> list[Entry]:
    """Every record of the journal at ``path``, oldest first; ``[]`` when there is none.

    A torn last line is skipped. A whole line that is not a JSON object raises
    ``JournalError`` naming the file and the line, or is skipped with ``skip_corrupt``.
    """
    path = Path(path)
    if not path.is_file():
        return []
    with path.open("rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        raw = handle.read()
    lines = raw.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        data = decode(line)
        if data is None:
            if skip_corrupt:
                continue
            raise JournalError(path, number, "not a JSON object")
        entries.append(Entry(number, data))
    last = decode(tail) if tail.strip() else None
    if last is not None:  # a whole record that only lacks its newline
        entries.append(Entry(len(lines) + 1, last))
    return entries


def read_from(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """The records of the whole lines from byte ``offset`` on, and the offset after the
    last of them: an incremental reader remembers it and asks again from there.

    Only newline-terminated lines are returned (a last line without its newline waits
    for the next call); lines that are not JSON objects are skipped. The caller checks
    that the file was not replaced or cut (inode, size) before it passes an old offset.
    """
    with Path(path).open("rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        handle.seek(offset)
        raw = handle.read()
    end = raw.rfind(b"\n") + 1
    lines = [line for line in raw[:end].split(b"\n") if line.strip()]
    try:  # one parse for the whole batch; line by line when any line is damaged
        batch = json.loads(b"[" + b",".join(lines) + b"]")
        if all(isinstance(item, dict) for item in batch):
            return batch, offset + end
    except ValueError:
        pass
    found = (decode(line) for line in lines)
    return [item for item in found if item is not None], offset + end


def _seal_tail(fd: int) -> None:
    """Under the exclusive lock: make the file end with a newline before a new line."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    start = _last_line_start(fd, size)
    if decode(os.pread(fd, size - start, start)) is None:
        os.ftruncate(fd, start)  # a torn write: drop the bytes no reader ever returned
    else:
        _write_all(fd, b"\n")


def _last_line(fd: int) -> bytes | None:
    """Under the lock, after ``_seal_tail``: the last non-blank line, or None."""
    end = os.fstat(fd).st_size
    while end > 0:
        start = _last_line_start(fd, end - 1)  # the file (or the cut) ends with a newline
        line = os.pread(fd, end - 1 - start, start)
        if line.strip():
            return line
        end = start
    return None


def _last_line_start(fd: int, size: int) -> int:
    """The offset just after the last newline of the file (0 when it has none)."""
    end = size
    while end > 0:
        begin = max(0, end - TAIL_CHUNK)
        found = os.pread(fd, end - begin, begin).rfind(b"\n")
        if found >= 0:
            return begin + found + 1
        end = begin
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
