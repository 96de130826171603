"""The service's write side: promotions, approvals and rollbacks, for hub identities.

The service is the one writer of stage pointers after the first stage: it holds the
registry write credential (its Docker config, ``DOCKER_CONFIG``, set by
``service_config(c, registry_credentials=...)``); users hold none and ask the service.
Each action is made for the authenticated hub user the handler passes (never a name from
the request) through ``spawner.promote.core``, with the same gates as the command line
(``default_gates``: verify, notebooks; for the last stage the approval gate, with the
approver the service authenticated), and is recorded in the trail with
``"authenticated": true``.

* ``promote`` to a stage before the last: a member, at once (gates, compare-and-swap).
* ``promote`` to the last stage: a member asks; it becomes a pending request
  (``spawner.hubservice.approvals``) for the digest the stage before holds now.
* ``approve``: an approver who did not ask runs that promotion (digest pinned to the
  request: if the stage before moved meanwhile, it is refused); ``reject`` closes it.
* ``rollback``: members for earlier stages, approvers for the last.

Guarantees: visibility first (a non-member gets the same 404 as for a project that does
not exist), then the role check (403), then the trail's hash chain (``TrailBroken``, 409),
and only then the registry: every refusal leaves every pointer where it was. Writes to
one project are serialised in this process; ``core``'s stage locks cover other
processes. It must not render anything or read request bodies.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from spawner.hubservice.approvals import (
    FILENAME,
    ApprovalBook,
    Conflict,
    Forbidden,
    approvers_text,
    check_decision,
    is_approver,
    may_roll_back,
)
from spawner.hubservice.source import Source
from spawner.hubservice.visibility import BadRequest, visible_project
from spawner.launch.access import Requester
from spawner.launch.stages import resolve_stage
from spawner.models import store
from spawner.promote.core import PromotionError, default_gates, plan, promote, rollback
from spawner.promote.gates import ApprovalPolicy, Gate, approval_gate
from spawner.promote.trail import AuditRecord
from spawner.settings import unknown_stage

STATUS = {"promoted": 200, "unchanged": 200, "rolled-back": 200, "refused": 409, "failed": 502}
GateFactory = Callable[[str, str | None], Sequence[Gate]]


@dataclass(frozen=True)
class Done:
    """An action's answer: the HTTP status and the JSON body."""

    status: int
    body: dict


def record_answer(record: AuditRecord, **extra) -> Done:
    return Done(STATUS.get(record.outcome, 502), {
        "outcome": record.outcome, "message": record.message, "record": record.to_dict(),
        **extra})


class Writer:
    """Promotions, approvals and rollbacks of the site ``source`` reads."""

    def __init__(self, source: Source, *, gates: GateFactory | None = None):
        self.source = source
        self.settings = source.settings
        self.book = ApprovalBook(self.settings.data_path(FILENAME))
        self._gates = gates or self.default_gates
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def approvers(self) -> list[str]:
        return list(self.settings.approvers)

    def default_gates(self, project: str, approver: str | None) -> list[Gate]:
        """verify and notebooks; with an approver (the last stage) the approval gate first,
        which also refuses the person who promoted to the stage before (unless
        ``c.Lockstep.allow_self_approval``)."""
        gates = default_gates(self.settings, project, last=False)
        if approver is None:
            return gates
        policy = ApprovalPolicy((approver,), bool(self.settings.allow_self_approval))
        return [approval_gate(policy), *gates]

    def _project(self, who: Requester, name: str) -> str:
        return visible_project(self.source.catalog().projects, name, who).name

    def _lock(self, project: str) -> asyncio.Lock:
        return self._locks.setdefault(project, asyncio.Lock())

    def _plan(self, to_stage: str):
        try:
            return plan(self.settings.stages, to_stage)
        except PromotionError as exc:
            raise BadRequest(str(exc)) from None

    async def promote(self, who: Requester, name: str, to_stage: str,
                      digest: str | None = None) -> Done:
        project = self._project(who, name)
        step = self._plan(to_stage)
        if step.last:
            return await self._ask(who, project, step, digest)
        async with self._lock(project):
            record = await asyncio.to_thread(
                promote, self.settings, project, to_stage, user=who.name, digest=digest,
                gates=self._gates(project, None), authenticated=True)
        self.source.forget_pointers()
        return record_answer(record)

    async def _ask(self, who: Requester, project: str, step, digest: str | None) -> Done:
        source = await asyncio.to_thread(resolve_stage, self.settings, project, step.from_stage)
        if source is None:
            raise Conflict(f"{step.from_stage} of {project} holds no image yet: promote to "
                           f"{step.from_stage} first; nothing was requested")
        if digest and digest != source.digest:
            raise Conflict(f"{step.from_stage} holds {source.digest}, not {digest}: ask for "
                           f"what {step.from_stage} holds; nothing was requested")
        target = await asyncio.to_thread(resolve_stage, self.settings, project, step.to_stage)
        models = await asyncio.to_thread(self._models, project, step)
        if target is not None and target.digest == source.digest and models[0] == models[1]:
            return Done(200, {"outcome": "unchanged", "message": f"{step.to_stage} already "
                              f"points at {source.digest}; nothing to do"})
        async with self._lock(project):
            request, new = await asyncio.to_thread(
                self.book.request, project=project, from_stage=step.from_stage,
                to_stage=step.to_stage, digest=source.digest, user=who.name,
                model=models[0] or "")
        said = "waits" if new else "already waits"
        return Done(202 if new else 200, {
            "outcome": "pending", "request": request.to_json(),
            "message": f"promotion of {project} {step.from_stage} -> {step.to_stage} "
                       f"({source.digest}) {said} for an approver (request {request.id}); "
                       f"approvers: {approvers_text(self.approvers)}"})

    def _models(self, project: str, step) -> tuple[str | None, str | None]:
        """(model the stage before holds, model the target holds): registry reads."""
        with store.endpoint(self.settings, project, step.from_stage) as source, \
                store.endpoint(self.settings, project, step.to_stage) as target:
            return (store.stage_model(source, step.from_stage),
                    store.stage_model(target, step.to_stage))

    async def approve(self, who: Requester, name: str, request_id: str) -> Done:
        project = self._project(who, name)
        async with self._lock(project):
            request = check_decision(await asyncio.to_thread(self.book.find, request_id),
                                     project=project, request_id=request_id, who=who,
                                     approvers=self.approvers)
            record = await asyncio.to_thread(
                promote, self.settings, project, request.to_stage, user=request.requested_by,
                approved_by=who.name, digest=request.digest, model=request.model or None,
                gates=self._gates(project, who.name), authenticated=True)
            if record.outcome in ("promoted", "unchanged"):
                request = self.book.decide(request, "approved", who.name, record.message)
            elif record.outcome == "refused":
                request = self.book.decide(request, "refused", who.name, record.message)
        self.source.forget_pointers()
        return record_answer(record, request=request.to_json())

    async def reject(self, who: Requester, name: str, request_id: str, reason: str) -> Done:
        project = self._project(who, name)
        async with self._lock(project):
            request = check_decision(await asyncio.to_thread(self.book.find, request_id),
                                     project=project, request_id=request_id, who=who,
                                     approvers=self.approvers)
            message = f"rejected by {who.name}" + (f": {reason}" if reason else "")
            request = self.book.decide(request, "rejected", who.name, message)
        return Done(200, {"outcome": "rejected", "message": message,
                          "request": request.to_json()})

    async def rollback(self, who: Requester, name: str, stage: str) -> Done:
        project = self._project(who, name)
        stages = list(self.settings.stages)
        if stage not in stages:
            raise BadRequest(unknown_stage(stage, stages))
        if not may_roll_back(who, stage, stages, self.approvers):
            raise Forbidden(f"{who.name} may not roll back {stage}, the last stage; "
                            f"approvers may: {approvers_text(self.approvers)}")
        async with self._lock(project):
            record = await asyncio.to_thread(rollback, self.settings, project, stage,
                                             user=who.name, authenticated=True)
        self.source.forget_pointers()
        return record_answer(record)

    async def approvals(self, who: Requester, name: str, limit: int = 50) -> dict:
        project = self._project(who, name)
        found = await asyncio.to_thread(self.book.requests, project)
        pending = [r for r in found if r.pending]
        decided = [r for r in found if not r.pending][-limit:]
        return {"project": project, "approver": is_approver(who, self.approvers),
                "approvers": self.approvers,
                "pending": [r.to_json() for r in pending],
                "decided": [r.to_json() for r in reversed(decided)]}
