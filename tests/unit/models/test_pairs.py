"""The (image, model) pair a stage holds, from the trail: push on promote, pop on rollback."""

from __future__ import annotations

from spawner.models.pairs import model_tag, pair_stack, rollback_pair
from spawner.promote.trail import AuditRecord, pointer_stack


def rec(action, digest, previous, model=None, previous_model=None, outcome=None):
    return AuditRecord(time="t", action=action, project="p", user="u", to_stage="prod",
                       outcome=outcome or ("promoted" if action == "promote" else "rolled-back"),
                       digest=digest, previous_digest=previous, model_digest=model,
                       previous_model_digest=previous_model)


def test_model_only_promotions_are_pairs_of_their_own_and_roll_back_one_by_one():
    records = [rec("promote", "i1", None, "m1"), rec("promote", "i1", "i1", "m2", "m1"),
               rec("promote", "i2", "i1", "m2", "m2"),
               rec("promote", "x", "i2", "m9", "m2", outcome="refused")]
    assert pair_stack(records, project="p", stage="prod") == [("i1", "m1"), ("i1", "m2"),
                                                              ("i2", "m2")]
    assert rollback_pair(records, project="p", stage="prod", current=("i2", "m2")) == (
        ("i1", "m2"), "")
    records.append(rec("rollback", "i1", "i2", "m2", "m2"))
    assert rollback_pair(records, project="p", stage="prod", current=("i1", "m2")) == (
        ("i1", "m1"), "")


def test_without_models_it_is_the_image_pointer_stack():
    records = [rec("promote", "i1", "i0"), rec("promote", "i2", "i1"),
               rec("rollback", "i1", "i2"), rec("promote", "i3", "i1")]
    stack = pair_stack(records, project="p", stage="prod")
    assert [image for image, _ in stack] == pointer_stack(records, project="p", stage="prod")
    # a model tag left in place (no model moved) does not block the rollback
    assert rollback_pair(records, project="p", stage="prod", current=("i3", "m7"))[0] == (
        "i1", None)


def test_a_model_moved_outside_lockstep_refuses_naming_both():
    records = [rec("promote", "i1", None, "m1"), rec("promote", "i2", "i1", "m2", "m1")]
    pair, why = rollback_pair(records, project="p", stage="prod", current=("i2", "m5"))
    assert pair is None and "model m5" in why and "model m2 there" in why
    assert model_tag("prod") == "model-prod"


def test_moved_outcomes_are_the_trails():
    from spawner.models import pairs
    from spawner.promote import trail

    assert pairs.MOVED == trail.MOVED
