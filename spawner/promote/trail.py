"""The audit trail: one JSON line per promotion or rollback attempt, append-only.

Guarantees: every attempt, passed or refused, is one ``AuditRecord`` appended to
``<data_dir>/audit.jsonl``, a ``spawner.journal``: written under an exclusive ``flock`` and
flushed with ``fsync`` before the lock is released, so concurrent writers never interleave
or lose a line; existing lines are never rewritten. A torn last line (a crash mid-write) is
skipped; any other line that is not a record is an error naming the line. Records
serialise with sorted keys and UTC ISO-8601 times.
The queries (``promoter_of``, ``pointer_stack``, ``rollback_target``) are pure functions
of a list of records. Nothing here talks to a registry.

Integrity: a hash chain. Every record appended carries ``prev``, the ``link`` of the
record on the line before it: ``sha256:`` + the SHA-256 of that record's canonical line
(``journal.encode``: sorted keys, no spaces), or ``""`` for the first line of a trail.
``AuditTrail.append`` reads that line under the journal's exclusive lock
(``journal.append_linked``), so concurrent writers chain correctly. ``chain_break`` (pure)
finds the first line whose ``prev`` does not match: the line before it was edited, or a
line between was deleted; ``AuditTrail.read(verify=True)``, which promotion and rollback
use before they move anything, raises ``TrailBroken`` naming that line and the fix.
Trails written before the chain (no ``prev``) are read as they are: the chain starts at
the first record that carries ``prev`` (which links the last unhashed line), and from then
on a record without ``prev`` is a break. Limits: the newest line is covered once a record
follows it; deleting the newest lines, or rewriting the whole chain, is not detectable
from the file alone (keep a copy of the trail on append-only storage for that).
Records also say ``authenticated``: true when the lockstep service acted for a hub
identity, false for the local single-admin mode, null in records older than that field.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from spawner import journal
from spawner.errors import LockstepError

FORMAT_VERSION = 1
Action = Literal["promote", "rollback"]
Outcome = Literal["promoted", "unchanged", "refused", "failed", "rolled-back"]
MOVED = ("promoted", "rolled-back")
"""Outcomes after which the stage pointer points at the record's digest."""


class AuditError(LockstepError):
    """The audit trail cannot be read or written."""


class TrailBroken(AuditError):
    """The trail's hash chain is broken: a line was edited or deleted."""

    status = 409

    def __init__(self, path: Path, line: int, reason: str):
        self.path, self.line, self.reason = Path(path), line, reason
        super().__init__(
            f"{path}, line {line}: the audit trail's hash chain is broken ({reason}): the "
            f"line before it was edited, or lines before it were deleted. Promotion "
            "and rollback refuse until the trail is whole; no stage was changed. Fix: restore "
            f"{path.name} from a backup; if the change is known and accepted, move the file "
            f"aside (mv {path} {path}.broken) and promote explicitly: a new trail starts a "
            "new chain (rollback then has no history to go back to)"
        )


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict: passed, failed or skipped, how long it took, and why."""

    name: str
    status: Literal["passed", "failed", "skipped"]
    seconds: float = 0.0
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class AuditRecord:
    """One promotion or rollback attempt, as it is written to the trail."""

    time: str
    action: Action
    project: str
    user: str
    to_stage: str
    outcome: Outcome
    digest: str | None
    from_stage: str | None = None
    previous_digest: str | None = None
    approved_by: str | None = None
    gates: tuple[GateResult, ...] = ()
    message: str = ""
    seconds: float = 0.0
    bytes_moved: int = 0
    authenticated: bool | None = None
    prev: str | None = None
    version: int = field(default=FORMAT_VERSION)
    model_digest: str | None = None  # the model moved with the image (spawner.models)
    previous_model_digest: str | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["gates"] = [asdict(g) for g in self.gates]
        for key in ("model_digest", "previous_model_digest"):  # written only when models
            if data[key] is None:  # are in use: older lines and their hashes stay as they are
                del data[key]
        return data

    def to_json(self) -> str:
        return journal.encode(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> AuditRecord:
        data = {**data, "gates": tuple(GateResult(**g) for g in data.get("gates") or ())}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, line: str) -> AuditRecord:
        return cls.from_dict(json.loads(line))


def utc_now() -> str:
    """The current time, UTC, ISO 8601 with milliseconds (``2026-01-01T12:00:00.123Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def link(data: dict) -> str:
    """The hash the next record's ``prev`` carries: SHA-256 of ``data``'s canonical line."""
    return "sha256:" + hashlib.sha256(journal.encode(data).encode()).hexdigest()


def link_of_line(raw: bytes | None) -> str:
    """``link`` of a raw journal line ('' for none; a line that is not JSON is hashed as
    it is, and ``chain_break`` reports it)."""
    if raw is None:
        return ""
    data = journal.decode(raw)
    return link(data) if data is not None else "sha256:" + hashlib.sha256(raw).hexdigest()


def chain_break(entries: Sequence[journal.Entry]) -> tuple[int, str] | None:
    """(line, reason) of the first record whose ``prev`` does not match the record before
    it, or None when the chain holds. Records before the first ``prev`` are unchained.
    Pure."""
    chained, previous = False, ""
    for entry in entries:
        claimed = entry.data.get("prev")
        if claimed is None:
            if chained:
                return entry.line, "the record carries no hash of the one before it"
        elif claimed != previous:
            return entry.line, (
                "it names no record before it, but it is not the first line" if claimed == ""
                else "it follows a record that is no longer in the file" if previous == ""
                else "its prev hash does not match the line before it"
            )
        else:
            chained = True
        previous = link(entry.data)
    return None


class AuditTrail:
    """The journal at ``path`` (see ``spawner.journal``), read and written as audit records."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, record: AuditRecord) -> AuditRecord:
        """Append ``record`` chained to the last line; returns it with its ``prev``."""
        def build(last: bytes | None) -> dict:
            return {**record.to_dict(), "prev": link_of_line(last)}

        try:
            written = journal.append_linked(self.path, build, mode=0o644)
        except OSError as exc:
            raise AuditError(
                f"cannot write the audit trail {self.path}: {exc}; check c.Lockstep.data_dir"
            ) from None
        return replace(record, prev=written["prev"])

    def check(self) -> None:
        """Raise ``TrailBroken`` when the hash chain is broken (see the module)."""
        self.read(verify=True)

    def read(self, project: str | None = None, *, verify: bool = False) -> list[AuditRecord]:
        """Every record (of ``project``), oldest first. A torn last line is skipped.
        ``verify``: first check the whole trail's hash chain (``TrailBroken``)."""
        try:
            entries = journal.read(self.path)
        except OSError as exc:
            raise AuditError(f"cannot read the audit trail {self.path}: {exc}") from None
        except journal.JournalError as exc:
            raise self._damaged(exc.line, exc.reason) from None
        if verify:
            broken = chain_break(entries)
            if broken is not None:
                raise TrailBroken(self.path, *broken)
        records = []
        for entry in entries:
            try:
                record = AuditRecord.from_dict(entry.data)
            except (ValueError, TypeError) as exc:
                raise self._damaged(entry.line, str(exc)) from None
            if project is None or record.project == project:
                records.append(record)
        return records

    def _damaged(self, line: int, reason: str) -> AuditError:
        return AuditError(
            f"{self.path}, line {line}: not an audit record ({reason}); "
            "the trail is append-only: restore it from backup"
        )


def promoter_of(
    records: Sequence[AuditRecord], *, project: str, stage: str, digest: str
) -> str | None:
    """Who last promoted ``digest`` to ``stage`` of ``project`` (None if nobody did)."""
    for record in reversed(records):
        if (record.project, record.to_stage, record.digest) == (project, stage, digest) and (
            record.action == "promote" and record.outcome in ("promoted", "unchanged")
        ):
            return record.user
    return None


def held_digests(records: Iterable[AuditRecord], *, project: str) -> set[str]:
    """Every digest a stage of ``project`` pointed at, as the trail tells it: what each
    promotion or rollback that moved a pointer put there, and what it replaced. A digest
    whose promotion was refused (a failed gate) is not in it unless a stage held it anyway.
    What ``user_options["digest"]`` may name (``c.Lockstep.allow_any_digest`` aside)."""
    held: set[str] = set()
    for record in records:
        if record.project == project and record.outcome in MOVED:
            held.update(d for d in (record.digest, record.previous_digest) if d)
    return held


def pointer_stack(records: Iterable[AuditRecord], *, project: str, stage: str) -> list[str]:
    """The digests ``stage`` pointed at, oldest first, as promotions pushed and rollbacks popped."""
    stack: list[str] = []
    for record in records:
        if record.project != project or record.to_stage != stage or record.outcome not in MOVED:
            continue
        if record.action == "rollback":
            while stack and stack[-1] != record.digest:
                stack.pop()
            if not stack and record.digest:
                stack.append(record.digest)
            continue
        if not stack and record.previous_digest:
            stack.append(record.previous_digest)
        if record.digest and (not stack or stack[-1] != record.digest):
            stack.append(record.digest)
    return stack


def rollback_target(
    records: Sequence[AuditRecord], *, project: str, stage: str, current: str | None
) -> tuple[str | None, str]:
    """(digest to point ``stage`` back at, or None; the reason when None)."""
    stack = pointer_stack(records, project=project, stage=stage)
    if not stack:
        return None, f"the audit trail records no promotion of {project} to {stage}"
    if current != stack[-1]:
        return None, (
            f"{stage} points at {current or 'nothing'}, but the audit trail's last move put "
            f"{stack[-1]} there; someone moved the tag outside lockstep: promote explicitly"
        )
    if len(stack) < 2:
        return None, f"the audit trail records no digest {stage} pointed at before {current}"
    return stack[-2], ""
