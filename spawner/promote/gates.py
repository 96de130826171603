"""Promotion gates: what must hold before a stage pointer may move.

Three gates, run in this order (cheapest first); the first that fails stops the rest,
which are recorded as skipped:

* ``approval`` (the last stage only): ``--approved-by`` is given, is one of
  ``c.Lockstep.approvers`` when that list is set, and is not the person who promoted the
  digest to the stage before, unless ``c.Lockstep.allow_self_approval``;
* ``verify``: the image was built from the project's current ``conda-lock.yml`` (its
  ``org.lockstep.lock-hash`` label is that lock's hash) and its installed packages
  (``/opt/env/conda-meta``) and their files equal the lock's linux-64 packages; a digest
  already checked against the same lock bytes is not read again (``spawner.verify.memo``),
  and the message says so;
* ``notebooks``: every ``notebooks/<project>/*.ipynb`` runs headless in the image
  (``spawner.promote.notebooks``).

The decisions (``approval_decision``, ``verify_decision``, and ``imagecheck.lock_decision``)
are pure; the gate functions around them read the registry, the lock and the engine. A gate never
raises for a "no": it returns a failed ``GateResult`` whose message says why and the fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from spawner.errors import LockstepError
from spawner.promote.trail import AuditRecord, GateResult, promoter_of
from spawner.verify.diff import Difference


@dataclass(frozen=True)
class GateContext:
    """What every gate may look at: the promotion being attempted."""

    project: str
    from_stage: str
    to_stage: str
    last_stage: bool
    digest: str
    source_repository: str  # HOST/NAME holding the digest
    user: str
    approved_by: str | None
    records: tuple[AuditRecord, ...] = ()

    @property
    def reference(self) -> str:
        return f"{self.source_repository}@{self.digest}"


@dataclass(frozen=True)
class Gate:
    """A named check of a ``GateContext``."""

    name: str
    run: Callable[[GateContext], GateResult]


@dataclass(frozen=True)
class ApprovalPolicy:
    approvers: tuple[str, ...] = ()
    allow_self_approval: bool = False


def approval_decision(
    *,
    policy: ApprovalPolicy,
    stage: str,
    previous_stage: str,
    approved_by: str | None,
    promoter: str | None,
) -> tuple[bool, str]:
    """(allowed, message) for approving promotion to the last ``stage``."""
    allowed = ", ".join(policy.approvers) if policy.approvers else ""
    if not approved_by:
        who = f" (one of: {allowed})" if allowed else ""
        return False, (
            f"promotion to {stage}, the last stage, needs an approval: add --approved-by USER{who}"
        )
    if policy.approvers and approved_by not in policy.approvers:
        return False, (
            f"{approved_by} may not approve promotion to {stage}; allowed approvers: "
            f"{allowed} (c.Lockstep.approvers)"
        )
    if promoter is not None and approved_by == promoter and not policy.allow_self_approval:
        return False, (
            f"{approved_by} promoted this digest to {previous_stage} and may not also "
            f"approve it for {stage}; ask another approver, or set "
            "c.Lockstep.allow_self_approval = True"
        )
    by = f"; {promoter} promoted it to {previous_stage}" if promoter else ""
    return True, f"approved by {approved_by}{by}"


def verify_decision(differences: Sequence[Difference], *, packages: int) -> tuple[bool, str]:
    if not differences:
        return True, f"{packages} installed packages equal the lock"
    listed = "; ".join(d.describe() for d in differences[:5])
    more = f" (and {len(differences) - 5} more)" if len(differences) > 5 else ""
    return False, (
        f"{len(differences)} difference(s) between the image and its lock: "
        f"{listed}{more}; run `lockstep verify` for the full list"
    )


def earlier_note(earlier: str) -> str:
    """What a verify message adds when its result is an earlier check's (``earlier``: when)."""
    return f" (same digest and lock as an earlier check, {earlier})" if earlier else ""


def timed(name: str, check: Callable[[], tuple[bool, str]]) -> GateResult:
    """Run ``check`` and time it; a ``LockstepError`` is a failed gate, with its message."""
    started = time.monotonic()
    try:
        ok, message = check()
    except LockstepError as exc:
        ok, message = False, str(exc)
    return GateResult(
        name, "passed" if ok else "failed", round(time.monotonic() - started, 3), message
    )


def approval_gate(policy: ApprovalPolicy) -> Gate:
    def run(ctx: GateContext) -> GateResult:
        promoter = promoter_of(
            ctx.records, project=ctx.project, stage=ctx.from_stage, digest=ctx.digest
        )
        return timed(
            "approval",
            lambda: approval_decision(
                policy=policy,
                stage=ctx.to_stage,
                previous_stage=ctx.from_stage,
                approved_by=ctx.approved_by,
                promoter=promoter,
            ),
        )

    return Gate("approval", run)


def verify_gate(settings, lock_path: Path) -> Gate:
    """The verify gate: lock-hash label, then packages and files, read from the registry
    (or remembered from an earlier check of the same digest against the same lock bytes)."""
    from spawner.verify.check import check_image

    def check(ctx: GateContext) -> tuple[bool, str]:
        found = check_image(settings, ctx.reference, lock_path)
        if not found.same_lock:
            ok, message = False, found.lock_note
        else:
            ok, message = verify_decision(found.differences, packages=found.packages)
        return ok, message + earlier_note(found.earlier)

    return Gate("verify", lambda ctx: timed("verify", lambda: check(ctx)))


def run_gates(gates: Sequence[Gate], ctx: GateContext, *, progress=None) -> tuple[GateResult, ...]:
    """Run ``gates`` in order; after the first failure the rest are skipped."""
    results: list[GateResult] = []
    for gate in gates:
        if any(r.status == "failed" for r in results):
            results.append(GateResult(gate.name, "skipped", 0.0, "an earlier gate failed"))
            continue
        if progress:
            progress(f"gate {gate.name}: running")
        results.append(gate.run(ctx))
    return tuple(results)
