"""Approvals: pending promotions to the last stage, who may decide them, and what each
user may do on a project's page.

A promotion to the last stage (``c.Lockstep.stages[-1]``, e.g. prod) is not made when it
is asked for: it becomes a *request* (project, stages, the digest the stage before holds
now, who asked, when). An approver then approves it (the service runs the promotion with
the gates, recording both names in the trail) or rejects it. Requests and decisions are
events in ``<data_dir>/approvals.jsonl``, a ``spawner.journal`` (append-only, locked,
fsync'd); a request's state is the fold of its events (``fold``).

Who is an approver: a hub user named in ``c.Lockstep.approvers``, or a member of a hub
group listed there as ``group:NAME``::

    c.Lockstep.approvers = ["lead-alice", "group:release-managers"]

An approver must also be able to see the project (a member, or a hub admin). Nobody
decides their own request (403, whatever ``c.Lockstep.allow_self_approval`` says: that
setting only lets the person who promoted to the stage before approve, as on the command
line). Rolling back the last stage is for approvers; earlier stages, for members.

Pure apart from ``ApprovalBook`` (the journal). It must not move stage pointers (that is
``spawner.hubservice.writes`` through ``spawner.promote.core``) nor render anything.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from spawner import journal
from spawner.errors import LockstepError
from spawner.hubservice.visibility import NotVisible
from spawner.launch.access import Requester
from spawner.promote.trail import utc_now

FILENAME = "approvals.jsonl"
GROUP_PREFIX = "group:"
DECISIONS = ("approved", "rejected", "refused")


class Forbidden(LockstepError):
    """The requester may see the project but not do this: 403."""

    status = 403


class Conflict(LockstepError):
    """The request is in a state that does not allow this (already decided): 409."""

    status = 409


@dataclass(frozen=True)
class Request:
    """A promotion to the last stage waiting for (or decided by) an approver."""

    id: str
    project: str
    from_stage: str
    to_stage: str
    digest: str
    requested_by: str
    time: str
    state: str = "pending"  # pending | approved | rejected | refused
    model: str = ""
    """The model digest the stage before held when asked ("" = none): pinned like the image."""
    decided_by: str = ""
    decided_at: str = ""
    message: str = ""

    @property
    def pending(self) -> bool:
        return self.state == "pending"

    def to_json(self) -> dict:
        return asdict(self)


def request_event(request: Request) -> dict:
    return {"event": "request", "id": request.id, "project": request.project,
            "from_stage": request.from_stage, "to_stage": request.to_stage,
            "digest": request.digest, "model": request.model, "user": request.requested_by,
            "time": request.time}


def decision_event(request_id: str, decision: str, user: str, message: str, when: str) -> dict:
    return {"event": "decision", "id": request_id, "decision": decision, "user": user,
            "message": message, "time": when}


def fold(events: Iterable[dict]) -> list[Request]:
    """Requests in the order they were made, each with its decision (the first one). Pure."""
    found: dict[str, Request] = {}
    for event in events:
        rid = str(event.get("id") or "")
        if event.get("event") == "request" and rid and rid not in found:
            found[rid] = Request(
                id=rid, project=str(event.get("project", "")),
                from_stage=str(event.get("from_stage", "")),
                to_stage=str(event.get("to_stage", "")), digest=str(event.get("digest", "")),
                requested_by=str(event.get("user", "")), time=str(event.get("time", "")),
                model=str(event.get("model") or ""))
        elif (event.get("event") == "decision" and rid in found and found[rid].pending
              and event.get("decision") in DECISIONS):
            found[rid] = replace(found[rid], state=str(event["decision"]),
                                 decided_by=str(event.get("user", "")),
                                 decided_at=str(event.get("time", "")),
                                 message=str(event.get("message", "")))
    return list(found.values())


def is_approver(who: Requester, approvers: Sequence[str]) -> bool:
    """Whether ``who`` is named in ``approvers`` or is in a ``group:NAME`` listed there."""
    groups = {a[len(GROUP_PREFIX):] for a in approvers if a.startswith(GROUP_PREFIX)}
    return who.name in approvers or bool(groups & set(who.groups))


def approvers_text(approvers: Sequence[str]) -> str:
    return ", ".join(approvers) or "(nobody: c.Lockstep.approvers is empty)"


def check_decision(request: Request | None, *, project: str, request_id: str,
                   who: Requester, approvers: Sequence[str]) -> Request:
    """The request ``who`` may approve or reject now; else ``Forbidden`` (not an
    approver), ``NotVisible`` (no such request in this project), ``Forbidden`` (their own
    request) or ``Conflict`` (already decided), checked in that order. Pure."""
    if not is_approver(who, approvers):
        raise Forbidden(f"{who.name} may not approve or reject promotions to the last "
                        f"stage; approvers: {approvers_text(approvers)} "
                        "(c.Lockstep.approvers; group:NAME for a hub group)")
    if request is None or request.project != project:
        raise NotVisible(f"project {project!r} has no promotion request {request_id!r}; "
                         "the pending ones are listed on the page and at "
                         f"api/projects/{project}/approvals")
    if request.requested_by == who.name:
        raise Forbidden(f"{who.name} asked for this promotion and may not decide it; "
                        "another approver must")
    if not request.pending:
        raise Conflict(f"request {request.id} was already {request.state} by "
                       f"{request.decided_by} at {request.decided_at}; nothing was changed")
    return request


def may_roll_back(who: Requester, stage: str, stages: Sequence[str],
                  approvers: Sequence[str]) -> bool:
    """Members roll back stages before the last; the last is for approvers. Pure."""
    return stage != stages[-1] or is_approver(who, approvers)


@dataclass(frozen=True)
class Actions:
    """What the page offers ``who`` on one project (the API enforces the same rules)."""

    promote_to: tuple[str, ...]  # stages promoted to directly (after the first, before the last)
    request_to: str | None  # the last stage, promoted to through an approval
    rollback: tuple[str, ...]
    decide: tuple[Request, ...]  # pending requests ``who`` may approve or reject
    waiting: tuple[Request, ...]  # pending requests ``who`` cannot decide
    approver: bool


def actions_for(who: Requester, stages: Sequence[str], approvers: Sequence[str],
                pending: Sequence[Request]) -> Actions:
    """The actions of a member ``who`` (the caller checked visibility). Pure."""
    stages = list(stages)
    approver = is_approver(who, approvers)
    mine = [r for r in pending if r.pending]
    decide = tuple(r for r in mine if approver and r.requested_by != who.name)
    return Actions(
        promote_to=tuple(stages[1:-1]),
        request_to=stages[-1] if len(stages) > 1 else None,
        rollback=tuple(s for s in stages[1:] if may_roll_back(who, s, stages, approvers)),
        decide=decide,
        waiting=tuple(r for r in mine if r not in decide),
        approver=approver,
    )


class ApprovalBook:
    """The approvals journal at ``path``: read, request, decide."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def requests(self, project: str | None = None) -> list[Request]:
        found = fold(e.data for e in journal.read(self.path, skip_corrupt=True))
        return [r for r in found if project is None or r.project == project]

    def find(self, request_id: str) -> Request | None:
        return next((r for r in self.requests() if r.id == request_id), None)

    def request(self, *, project: str, from_stage: str, to_stage: str, digest: str,
                user: str, model: str = "") -> tuple[Request, bool]:
        """(the pending request for this image and model, whether it is new): asking twice
        for the same promotion finds the first request."""
        for known in self.requests(project):
            if known.pending and (known.to_stage, known.digest, known.model) == (
                    to_stage, digest, model):
                return known, False
        made = Request(id=secrets.token_hex(6), project=project, from_stage=from_stage,
                       to_stage=to_stage, digest=digest, requested_by=user, time=utc_now(),
                       model=model)
        journal.append(self.path, request_event(made), mode=0o640)
        return made, True

    def decide(self, request: Request, decision: str, user: str, message: str) -> Request:
        when = utc_now()
        journal.append(self.path, decision_event(request.id, decision, user, message, when),
                       mode=0o640)
        return replace(request, state=decision, decided_by=user, decided_at=when,
                       message=message)
