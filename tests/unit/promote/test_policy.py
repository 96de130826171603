"""Pure promotion decisions: stage plan, approval policy, lock match, gate ordering."""

import pytest

from spawner.promote.core import PromotionError, plan, unreachable_message
from spawner.promote.gates import (
    ApprovalPolicy,
    Gate,
    GateContext,
    approval_decision,
    run_gates,
    verify_decision,
)
from spawner.promote.trail import GateResult
from spawner.verify.check import lock_decision
from spawner.verify.diff import Difference

STAGES = ["dev", "qa", "prod"]


def test_plan_takes_the_stage_before():
    assert plan(STAGES, "qa").from_stage == "dev"
    step = plan(STAGES, "prod")
    assert (step.from_stage, step.to_stage, step.last) == ("qa", "prod", True)
    assert plan(STAGES, "qa").last is False


def test_plan_refuses_first_and_unknown_stages():
    with pytest.raises(PromotionError, match="dev is the first stage: `lockstep build` sets it"):
        plan(STAGES, "dev")
    with pytest.raises(PromotionError,
                       match=r"unknown stage 'staging'; this site's stages are dev, qa, prod"):
        plan(STAGES, "staging")


def decide(**kw):
    args = dict(
        policy=ApprovalPolicy(),
        stage="prod",
        previous_stage="qa",
        approved_by="bob",
        promoter="alice",
    )
    args.update(kw)
    return approval_decision(**args)


def test_approval_needs_an_approver():
    ok, message = decide(approved_by=None, policy=ApprovalPolicy(("lead",)))
    assert not ok
    assert message == (
        "promotion to prod, the last stage, needs an approval: "
        "add --approved-by USER (one of: lead)"
    )


def test_approval_by_someone_else_passes():
    assert decide() == (True, "approved by bob; alice promoted it to qa")


def test_approver_must_be_listed_when_the_list_is_set():
    ok, message = decide(policy=ApprovalPolicy(("lead-alice", "ops-bob")), approved_by="carol")
    assert not ok
    assert message == (
        "carol may not approve promotion to prod; allowed approvers: "
        "lead-alice, ops-bob (c.Lockstep.approvers)"
    )
    assert decide(policy=ApprovalPolicy(("carol",)), approved_by="carol")[0]


def test_self_approval_is_refused_unless_allowed():
    ok, message = decide(approved_by="alice")
    assert not ok
    assert "alice promoted this digest to qa and may not also approve it for prod" in message
    assert "c.Lockstep.allow_self_approval = True" in message
    assert decide(approved_by="alice", policy=ApprovalPolicy((), True))[0]


def test_unknown_promoter_does_not_block():
    assert decide(promoter=None, approved_by="alice") == (True, "approved by alice")


def test_lock_decision():
    ok, message = lock_decision(
        label="sha256:" + "a" * 64,
        lock_hashes=["sha256:" + "b" * 64],
        lock_path="environments/x/conda-lock.yml",
    )
    assert not ok and message.startswith("image was built from another lock")
    assert lock_decision(label="h", lock_hashes=["h"], lock_path="l")[0]
    assert (
        "no org.lockstep.lock-hash label"
        in lock_decision(label="", lock_hashes=["h"], lock_path="l")[1]
    )


def test_verify_decision_lists_the_first_differences():
    diffs = [Difference(f"p{i}", "missing", "gone") for i in range(7)]
    ok, message = verify_decision(diffs, packages=10)
    assert not ok
    assert message.startswith("7 difference(s) between the image and its lock: missing  p0: gone")
    assert "(and 2 more)" in message
    assert verify_decision([], packages=3) == (True, "3 installed packages equal the lock")


def test_gates_run_in_order_and_stop_at_the_first_failure():
    calls = []

    def gate(name, status):
        def run(ctx):
            calls.append(name)
            return GateResult(name, status, 0.1, name)

        return Gate(name, run)

    ctx = GateContext("p", "qa", "prod", True, "sha256:" + "0" * 64, "h/p", "u", None)
    results = run_gates([gate("a", "passed"), gate("b", "failed"), gate("c", "passed")], ctx)
    assert calls == ["a", "b"]
    assert [(r.name, r.status) for r in results] == [
        ("a", "passed"),
        ("b", "failed"),
        ("c", "skipped"),
    ]


def test_unreachable_registry_message():
    import httpx

    from spawner.image.registry import RegistryError

    cause = httpx.ConnectError("[Errno 111] Connection refused")
    exc = RegistryError("registry 127.0.0.1:5999 did not answer HEAD /v2/x (ConnectError)")
    exc.__cause__ = cause
    assert unreachable_message(exc) == "registry 127.0.0.1:5999 is unreachable (connection refused)"
    assert unreachable_message(RegistryError("registry h: GET answered 500")) is None
