"""A project's promotion timeline: the audit trail as lanes (stages) and moves (records).

``build_timeline`` turns ``spawner.promote.trail.AuditRecord``s of one project into a
``Timeline``: one lane per stage (the site's stages in order, then any other stage the
trail names), one ``Move`` per promotion or rollback attempt, oldest first, with who, when,
the outcome, the gates and their results, and the approver. The API returns it as JSON
(``to_json``); ``spawner.hubservice.svg`` draws it.

Pure: no file, clock or network; the records are not changed. It must not read the trail
(``spawner.hubservice.source`` does) nor decide anything about promotions.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from spawner.promote.trail import AuditRecord


@dataclass(frozen=True)
class GateView:
    name: str
    status: str
    message: str = ""


@dataclass(frozen=True)
class Move:
    """One attempt to move a stage pointer, as the timeline shows it."""

    index: int
    time: str
    action: str
    user: str
    to_stage: str
    outcome: str
    digest: str = ""
    from_stage: str = ""
    previous_digest: str = ""
    approved_by: str = ""
    gates: tuple[GateView, ...] = ()
    message: str = ""

    @property
    def moved(self) -> bool:
        return self.outcome in ("promoted", "rolled-back")

    def summary(self) -> str:
        """One line: when, who, what and the result (the SVG tooltip and the table row)."""
        path = f"{self.from_stage} -> {self.to_stage}" if self.from_stage else self.to_stage
        gates = ", ".join(f"{g.name} {g.status}" for g in self.gates)
        parts = [f"{self.time} {self.user or '(unknown)'}: {self.action} {path}: {self.outcome}"]
        if gates:
            parts.append(f"gates: {gates}")
        if self.approved_by:
            parts.append(f"approved by {self.approved_by}")
        if self.digest:
            parts.append(short_digest(self.digest))
        return "; ".join(parts)

    def to_json(self) -> dict:
        return {
            "index": self.index, "time": self.time, "action": self.action, "user": self.user,
            "from_stage": self.from_stage or None, "to_stage": self.to_stage,
            "outcome": self.outcome, "digest": self.digest or None,
            "previous_digest": self.previous_digest or None,
            "approved_by": self.approved_by or None, "message": self.message,
            "gates": [{"name": g.name, "status": g.status, "message": g.message}
                      for g in self.gates],
        }


@dataclass(frozen=True)
class Timeline:
    """Lanes (stage names, in order) and the moves shown; ``total`` counts every record."""

    project: str
    lanes: tuple[str, ...]
    moves: tuple[Move, ...]
    total: int

    def to_json(self) -> dict:
        return {"project": self.project, "lanes": list(self.lanes), "total": self.total,
                "moves": [m.to_json() for m in self.moves]}


def short_digest(digest: str) -> str:
    """``sha256:0123456789ab...`` -> ``sha256:0123456789ab`` (12 hex digits)."""
    algo, _, hexpart = (digest or "").partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else digest


def _move(index: int, record: AuditRecord) -> Move:
    return Move(
        index=index, time=record.time, action=record.action, user=record.user,
        to_stage=record.to_stage, outcome=record.outcome, digest=record.digest or "",
        from_stage=record.from_stage or "", previous_digest=record.previous_digest or "",
        approved_by=record.approved_by or "", message=record.message,
        gates=tuple(GateView(g.name, g.status, g.message) for g in record.gates),
    )


def lanes_for(records: Iterable[AuditRecord], stages: Sequence[str]) -> tuple[str, ...]:
    """The site's stages in order, then other stages the records name, sorted."""
    named = {r.to_stage for r in records} | {r.from_stage for r in records if r.from_stage}
    return tuple(stages) + tuple(sorted(named - set(stages)))


def build_timeline(records: Sequence[AuditRecord], *, project: str, stages: Sequence[str],
                   limit: int | None = None) -> Timeline:
    """The timeline of ``project`` from its records (oldest first); ``limit`` keeps the
    latest ``limit`` moves (the lanes still cover every record)."""
    mine = [r for r in records if r.project == project]
    moves = [_move(i, r) for i, r in enumerate(mine)]
    if limit is not None and limit >= 0:
        moves = moves[len(moves) - limit:] if limit else []
    return Timeline(project, lanes_for(mine, stages), tuple(moves), len(mine))
