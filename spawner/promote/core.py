"""Promotion and rollback: gates, then a compare-and-swap pointer move, always audited.

``promote`` moves stage N's digest to stage N+1 (``c.Lockstep.stages`` order): it reads
both pointers, runs the gates against the digest, then under the (project, stage) lock
checks that neither pointer moved meanwhile and writes the tag. ``rollback`` points a stage
back at the digest it held before (from the audit trail). Each attempt appends exactly one
``AuditRecord``, whatever its outcome, and the returned record is that line.

Both first check the trail's hash chain (``spawner.promote.trail``): a broken chain raises
``TrailBroken`` (naming the line and the fix) before any registry read, and appends
nothing. ``authenticated`` is recorded as given: the lockstep service passes True for a
hub identity; the command line's local single-admin mode leaves it False.

Guarantees: no pointer changes unless every gate passed and the compare-and-swap holds;
an unreachable registry, a refused gate or a conflict leave every pointer as it was and
say so. ``plan`` is pure. Nothing here prints: progress goes to the ``progress`` callback.
"""

from __future__ import annotations

import getpass
import os
import re
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import httpx

from spawner.errors import LockstepError
from spawner.image.registry import RegistryClient, RegistryError
from spawner.launch.stages import split_repository, stage_repository
from spawner.models.pairs import model_tag, rollback_pair
from spawner.project import load_project
from spawner.promote.gates import (
    ApprovalPolicy,
    Gate,
    GateContext,
    approval_gate,
    run_gates,
    verify_gate,
)
from spawner.promote.pointers import Endpoint, PointerError, StageLock, move_pointer, read_pointer
from spawner.promote.trail import AuditRecord, AuditTrail, GateResult, utc_now
from spawner.settings import unknown_stage

if TYPE_CHECKING:
    from spawner.models.promotion import ModelPair

NO_CHANGE = "no stage was changed"
Progress = Callable[[str], None]


class PromotionError(LockstepError):
    """A promotion or rollback request that cannot even be attempted (bad stage, project)."""


@dataclass(frozen=True)
class Plan:
    from_stage: str
    to_stage: str
    last: bool


def plan(stages: Sequence[str], to_stage: str) -> Plan:
    """Which stage feeds ``to_stage``; refuses the first stage and unknown names."""
    stages = list(stages)
    if to_stage not in stages:
        raise PromotionError(unknown_stage(to_stage, stages))
    index = stages.index(to_stage)
    if index == 0:
        raise PromotionError(
            f"{to_stage} is the first stage: `lockstep build` sets it; promote "
            f"to {stages[1] if len(stages) > 1 else 'a later stage'} instead"
        )
    return Plan(stages[index - 1], to_stage, index == len(stages) - 1)


def acting_user(explicit: str | None = None) -> str:
    return explicit or os.environ.get("USER") or getpass.getuser()


def unreachable_message(exc: BaseException) -> str | None:
    """ "registry H is unreachable (connection refused)" when ``exc`` is a transport failure."""
    cause = exc.__cause__ if isinstance(exc, RegistryError) else exc
    if not isinstance(cause, httpx.TransportError):
        return None
    text = str(cause).lower()
    reason = (
        "connection refused"
        if "refused" in text
        else "timed out"
        if isinstance(cause, httpx.TimeoutException)
        else cause.__class__.__name__
    )
    match = re.match(r"registry (\S+)", str(exc))
    host = match.group(1) if match else "?"
    return f"registry {host} is unreachable ({reason})"


class _Session:
    """Registry clients per host and endpoints per stage, closed together."""

    def __init__(self, settings, project: str, stack: ExitStack):
        self.settings, self.project, self.stack = settings, project, stack
        self.clients: dict[str, RegistryClient] = {}

    def endpoint(self, stage: str) -> Endpoint:
        host, name = split_repository(stage_repository(self.settings, self.project, stage))
        if host not in self.clients:
            self.clients[host] = self.stack.enter_context(
                RegistryClient.for_host(
                    host, insecure_registries=tuple(self.settings.insecure_registries)
                )
            )
        return Endpoint(self.clients[host], name)


def default_gates(settings, project: str, *, last: bool, lock_path=None) -> list[Gate]:
    from spawner.promote.notebooks import notebooks_gate
    from spawner.promote.prepull import hooks as prepull_hooks

    proj = load_project(settings.project_dir(project))
    gates = []
    if last:
        gates.append(
            approval_gate(
                ApprovalPolicy(tuple(settings.approvers), bool(settings.allow_self_approval))
            )
        )
    gates.append(
        verify_gate(settings, lock_path or settings.project_dir(project) / "conda-lock.yml")
    )
    gates.append(notebooks_gate(settings, proj))
    return gates + prepull_hooks(settings)  # c.Lockstep.prepull_on_promote: pull, then move


def trail_of(settings) -> AuditTrail:
    return AuditTrail(settings.data_path("audit.jsonl"))


def _record(**fields) -> AuditRecord:
    return AuditRecord(time=utc_now(), **fields)


def promote(
    settings,
    project: str,
    to_stage: str,
    *,
    user: str | None = None,
    approved_by: str | None = None,
    digest: str | None = None,
    model: str | None = None,
    gates: Sequence[Gate] | None = None,
    progress: Progress | None = None,
    authenticated: bool = False,
) -> AuditRecord:
    """Promote ``project`` to ``to_stage``; returns the audit record that was appended.

    The stage's model (``model-<stage>``, ``spawner.models``) moves with the image;
    ``digest``/``model``: refuse unless the source stage holds exactly these."""
    say = progress or (lambda message: None)
    step = plan(settings.stages, to_stage)
    user = acting_user(user)
    trail = trail_of(settings)
    trail.check()
    started = time.monotonic()
    base = dict(
        action="promote",
        project=project,
        user=user,
        to_stage=to_stage,
        from_stage=step.from_stage,
        approved_by=approved_by,
        authenticated=authenticated,
    )
    if gates is None:
        gates = default_gates(settings, project, last=step.last)
    record = _record(**base, outcome="failed", digest=digest)
    try:
        with ExitStack() as stack:
            session = _Session(settings, project, stack)
            source, target = session.endpoint(step.from_stage), session.endpoint(to_stage)
            current = read_pointer(source, step.from_stage)
            previous = read_pointer(target, to_stage)
            from spawner.models.promotion import read_models  # imports spawner.promote

            models = read_models(source, step.from_stage, target, to_stage)
            record = replace(record, digest=current, previous_digest=previous,
                             **models.record_fields())
            if current is None:
                record = replace(
                    record,
                    outcome="refused",
                    message=(
                        f"{source.name}:{step.from_stage} does not exist; build the project "
                        f"(`lockstep build`) or promote to {step.from_stage} first; {NO_CHANGE}"
                    ),
                )
            elif digest and digest != current:
                record = replace(
                    record,
                    outcome="refused",
                    message=(
                        f"--digest {digest} is not what {step.from_stage} points at ({current}); "
                        f"promote what {step.from_stage} holds, or promote {digest} to "
                        f"{step.from_stage} first; {NO_CHANGE}"
                    ),
                )
            elif model and model != models.source:
                record = replace(
                    record,
                    outcome="refused",
                    message=(
                        f"--model {model} is not the model {step.from_stage} holds "
                        f"({models.source or 'none'}); pin it onto the first stage with "
                        f"`lockstep model pin {project} {model}` and promote it; {NO_CHANGE}"
                    ),
                )
            elif previous == current and not models.moves:
                record = replace(
                    record,
                    outcome="unchanged",
                    message=(f"{to_stage} already points at {current}; nothing to do"),
                )
            else:
                record = _gate_and_move(settings, record, step, source, target, gates, trail, say,
                                        models)
    except (RegistryError, PointerError) as exc:
        reason = unreachable_message(exc) or str(exc)
        record = replace(record, outcome="failed", message=f"{reason}; {NO_CHANGE}")
    record = replace(record, seconds=round(time.monotonic() - started, 4))
    if record.outcome != "promoted":  # a promoted record was appended under the stage lock
        record = trail.append(record)
    else:
        _after_move(settings, say)
    return record


def _after_move(settings, say: Progress) -> None:
    """What follows a pointer move: the pre-puller values file, when the site keeps one."""
    from spawner.promote.prepull import refresh_values

    said = refresh_values(settings)
    if said:
        say(said)


def _gate_and_move(settings, record, step, source, target, gates, trail, say,
                   models: ModelPair | None = None) -> AuditRecord:
    from spawner.models.promotion import ModelPair, move_model, restore_model

    models = models or ModelPair(None, None)
    ctx = GateContext(
        project=record.project,
        from_stage=step.from_stage,
        to_stage=step.to_stage,
        last_stage=step.last,
        digest=record.digest,
        source_repository=source.name,
        user=record.user,
        approved_by=record.approved_by,
        records=tuple(trail.read(record.project, verify=True)),
    )
    say(f"promoting {source.name}@{record.digest} from {step.from_stage} to {step.to_stage}")
    results = run_gates(gates, ctx, progress=say)
    record = replace(record, gates=results)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        return replace(
            record,
            outcome="refused",
            message=(f"gate {failed[0].name} failed: {failed[0].message}; {NO_CHANGE}"),
        )
    with StageLock(settings.data_path("locks"), record.project, step.to_stage):
        now_source = read_pointer(source, step.from_stage)
        if now_source != record.digest:
            raise PointerError(
                f"{source.name}:{step.from_stage} moved from {record.digest} to "
                f"{now_source} while the gates ran; run the promotion again"
            )
        model_bytes = move_model(source=source, target=target, from_stage=step.from_stage,
                                 to_stage=step.to_stage, pair=models)
        try:
            move = move_pointer(
                source=source,
                target=target,
                stage=step.to_stage,
                digest=record.digest,
                expected=record.previous_digest,
            )
        except (RegistryError, PointerError) as exc:
            raise PointerError(f"{exc}{restore_model(target, step.to_stage, models)}") from exc
        model_note = (f"; model {model_tag(step.to_stage)} now {models.source} (was "
                      f"{models.target or 'nothing'})" if models.moves else "")
        record = replace(
            record,
            outcome="promoted",
            bytes_moved=move.bytes_moved + model_bytes,
            message=(
                f"{target.name}:{step.to_stage} now points at {record.digest} "
                f"(was {record.previous_digest or 'nothing'}; pointer move {move.seconds:.3f} s, "
                f"{move.bytes_moved} bytes){model_note}"
            ),
        )
        record = trail.append(record)
    return record


def rollback(
    settings,
    project: str,
    stage: str,
    *,
    user: str | None = None,
    progress: Progress | None = None,
    authenticated: bool = False,
) -> AuditRecord:
    """Point ``stage`` back at the digest it held before its last move (from the trail)."""
    if stage not in settings.stages:
        raise PromotionError(unknown_stage(stage, settings.stages))
    say = progress or (lambda message: None)
    trail = trail_of(settings)
    trail.check()
    started = time.monotonic()
    say(f"rolling back {project} {stage}")
    record = _record(
        action="rollback",
        project=project,
        user=acting_user(user),
        to_stage=stage,
        outcome="failed",
        digest=None,
        authenticated=authenticated,
    )
    try:
        with ExitStack() as stack:
            target = _Session(settings, project, stack).endpoint(stage)
            with StageLock(settings.data_path("locks"), project, stage):
                record = _roll_back_pair(trail, record, target, started)
                if record.outcome == "rolled-back":
                    record = trail.append(record)
        if record.outcome == "rolled-back":
            _after_move(settings, say)
            return record
    except (RegistryError, PointerError) as exc:
        reason = unreachable_message(exc) or str(exc)
        record = replace(record, outcome="failed", message=f"{reason}; {NO_CHANGE}")
    record = replace(record, seconds=round(time.monotonic() - started, 4))
    return trail.append(record)


def _roll_back_pair(trail, record: AuditRecord, target: Endpoint, started: float) -> AuditRecord:
    """Under the stage lock: point the stage's image (and model) back at the pair before."""
    from spawner.models.promotion import ModelPair, restore_model

    project, stage = record.project, record.to_stage
    current = read_pointer(target, stage)
    current_model = read_pointer(target, model_tag(stage))
    wanted, why = rollback_pair(trail.read(project, verify=True), project=project,
                                stage=stage, current=(current, current_model))
    record = replace(record, previous_digest=current, digest=wanted and wanted[0])
    if wanted is None:
        return replace(record, outcome="refused", message=f"{why}; {NO_CHANGE}")
    image, model = wanted
    moved, note = 0, ""
    if model is not None:
        record = replace(record, model_digest=model, previous_model_digest=current_model)
        if model != current_model:
            moved += move_pointer(source=target, target=target, stage=model_tag(stage),
                                  digest=model, expected=current_model).bytes_moved
            note = f"; model back at {model} (was {current_model})"
    if image != current:
        try:
            moved += move_pointer(source=target, target=target, stage=stage, digest=image,
                                  expected=current).bytes_moved
        except (RegistryError, PointerError) as exc:
            pair = ModelPair(model, current_model) if model != current_model else None
            undo = restore_model(target, stage, pair) if pair else ""
            raise PointerError(f"{exc}{undo}") from exc
    return replace(
        record,
        outcome="rolled-back",
        bytes_moved=moved,
        seconds=round(time.monotonic() - started, 4),
        message=f"{target.name}:{stage} points back at {image} (was {current}){note}",
    )


__all__ = ["GateResult", "PromotionError", "plan", "promote", "rollback"]
