"""Provenance log of notebook sessions: who ran which project, stage, digest and lock, when.

Each start and each stop appends one JSON line to ``settings.data_path("sessions.jsonl")``,
a ``spawner.journal`` (append-only, file-locked, fsync'd); the file is never rewritten, so
the log is an audit trail. A session's record is the fold of its events by ``id``
(``read_sessions``). A recorded session's digest can be spawned again
(``user_options={"session": id}``), which is how "run what I ran in March" works.

Guarantees: appends are atomic with respect to each other and on disk when
``append_event`` returns; readers skip a torn last line, and any damaged line, instead of
failing (a spawn must not fail on the log). The record builders and the fold are pure;
only ``append_event``, ``read_events`` and ``SessionLog`` (an incremental reader for
long-running processes: only appended lines are parsed) touch the file, through the journal.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from spawner import journal
from spawner.errors import LockstepError

FILENAME = "sessions.jsonl"
FIELDS = ("id", "user", "project", "stage", "digest", "image", "lock_hash", "server_name",
          "container_id", "start", "stop")


class SessionError(LockstepError):
    """A session that is not in the log, or not the caller's."""


@dataclass(frozen=True)
class Session:
    """One notebook session, as the log knows it."""

    id: str
    user: str
    project: str
    stage: str
    digest: str
    image: str
    lock_hash: str = ""
    server_name: str = ""
    container_id: str = ""
    start: str = ""
    stop: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_session_id() -> str:
    """A short random id, unique enough for a site's session log."""
    return secrets.token_hex(6)


def start_event(session: Session) -> dict:
    return {"event": "start", **session.to_json()}


def stop_event(session: Session, when: str) -> dict:
    return {"event": "stop", "id": session.id, "user": session.user, "stop": when}


def append_event(path: Path, event: dict) -> None:
    """Append one JSON line to the journal at ``path``; never rewrites the file."""
    journal.append(path, event, mode=0o640)


def apply_event(state: dict[str, dict], event: dict) -> str | None:
    """Fold one event into ``state`` (id -> session fields), in place; returns the id it
    changed, or None. A start creates, a later stop closes."""
    sid = event.get("id")
    if not sid:
        return None
    kind = event.get("event")
    if kind == "start":
        state[sid] = {k: str(event.get(k) or "") for k in FIELDS}
        return sid
    if kind == "stop" and sid in state:
        state[sid]["stop"] = str(event.get("stop") or "")
        return sid
    return None


def fold_events(events: list[dict]) -> list[Session]:
    """Sessions from events in log order: a start creates, a later stop closes. Pure."""
    state: dict[str, dict] = {}
    for event in events:
        apply_event(state, event)
    return [Session(**fields) for fields in state.values()]


class SessionLog:
    """The session log read incrementally: each ``sessions()`` reads only the lines
    appended since the last call (``journal.read_from``) and folds them into the state it
    keeps; a file that was replaced (inode), shrank, or was rewritten in place (same size
    with a new mtime, or no newline just before the remembered offset) is read again from
    the start.
    Thread-safe. For long-running readers (the lockstep service); it never writes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._guard = threading.Lock()
        self._reset(None)

    def _replaced(self, stat: os.stat_result) -> bool:
        """A new file, a shorter one, one rewritten to the same size, or one whose byte
        before the remembered offset is no longer a newline: read it all again."""
        if stat.st_ino != self._inode or stat.st_size < self._offset:
            return True
        if stat.st_size == self._offset:
            return stat.st_mtime_ns != self._mtime and self._offset > 0
        if self._offset == 0:
            return False
        with self.path.open("rb") as handle:
            handle.seek(self._offset - 1)
            return handle.read(1) != b"\n"

    def _reset(self, inode: int | None) -> None:
        self._inode, self._offset, self._mtime = inode, 0, 0
        self._state: dict[str, dict] = {}
        self._built: dict[str, Session] = {}

    def sessions(self) -> list[Session]:
        """Every session in the log, oldest first (as ``read_sessions``)."""
        with self._guard:
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                self._reset(None)
                return []
            if self._replaced(stat):
                self._reset(stat.st_ino)
            if stat.st_size > self._offset:
                events, self._offset = journal.read_from(self.path, self._offset)
                self._mtime = stat.st_mtime_ns
                for event in events:
                    changed = apply_event(self._state, event)
                    if changed:
                        self._built.pop(changed, None)
            built = self._built
            for sid, fields in self._state.items():
                if sid not in built:
                    built[sid] = Session(**fields)
            return [built[sid] for sid in self._state]


def read_events(path: Path) -> list[dict]:
    """Every event of the log, oldest first; torn and damaged lines are skipped."""
    return [entry.data for entry in journal.read(path, skip_corrupt=True)]


def read_sessions(
    path: Path, *, project: str | None = None, user: str | None = None
) -> list[Session]:
    """Every session in the log (oldest first), optionally for one project and/or user."""
    return [
        s for s in fold_events(read_events(path))
        if (project is None or s.project == project) and (user is None or s.user == user)
    ]


def find_session(path: Path, session_id: str) -> Session:
    for session in read_sessions(path):
        if session.id == session_id:
            return session
    raise SessionError(
        f"no session {session_id!r} in {path}; list sessions with `lockstep sessions`"
    )
