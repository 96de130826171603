"""A stage's (image, model) pair as the audit trail records it: pure queries.

A stage holds an image digest (its stage tag) and, once a model was promoted with it, a
model digest (the ``model-<stage>`` tag beside it, ``model_tag``). Promotion moves both
and its trail record carries ``digest``/``model_digest`` and what the stage held before
(``previous_digest``/``previous_model_digest``); rollback restores the pair before.

``pair_stack`` is ``spawner.promote.trail.pointer_stack`` for pairs: promotions push,
rollbacks pop. A model of None means "no model moved": the ``model-<stage>`` tag was left
as it was (a tag cannot be removed without deleting the artifact). Records without model
fields (older trails, sites without models) count as
pairs ``(digest, None)``, so for them it gives what ``pointer_stack`` gives. Nothing here
reads a file or a registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

MOVED = ("promoted", "rolled-back")  # spawner.promote.trail.MOVED (not imported: that
# package imports this one)
MODEL_TAG_PREFIX = "model-"
Pair = tuple[str | None, str | None]


def model_tag(stage: str) -> str:
    """The tag of ``stage``'s model pointer, beside the stage tag: ``model-<stage>``."""
    return f"{MODEL_TAG_PREFIX}{stage}"


def _pair(record, *, before: bool = False) -> Pair:
    if before:
        return record.previous_digest, getattr(record, "previous_model_digest", None)
    return record.digest, getattr(record, "model_digest", None)


def pair_stack(records: Iterable, *, project: str, stage: str) -> list[Pair]:
    """The pairs ``stage`` held, oldest first, as promotions pushed and rollbacks popped."""
    stack: list[Pair] = []
    for record in records:
        if record.project != project or record.to_stage != stage or record.outcome not in MOVED:
            continue
        now = _pair(record)
        if record.action == "rollback":
            while stack and stack[-1] != now:
                stack.pop()
            if not stack and now[0]:
                stack.append(now)
            continue
        if not stack and record.previous_digest:
            stack.append(_pair(record, before=True))
        if now[0] and (not stack or stack[-1] != now):
            stack.append(now)
    return stack


def same_pair(held: Pair, recorded: Pair) -> bool:
    """Whether a stage that holds ``held`` is where the trail says: a recorded model of
    None (no model moved) matches whatever model tag the stage has."""
    return held[0] == recorded[0] and (recorded[1] is None or held[1] == recorded[1])


def rollback_pair(
    records: Sequence, *, project: str, stage: str, current: Pair
) -> tuple[Pair | None, str]:
    """(pair to point ``stage`` back at, or None; the reason when None)."""
    stack = pair_stack(records, project=project, stage=stage)
    if not stack:
        return None, f"the audit trail records no promotion of {project} to {stage}"
    if not same_pair(current, stack[-1]):
        image, model = current
        if stack[-1][1] is None:  # no model in play: pointer_stack's words
            return None, (
                f"{stage} points at {image or 'nothing'}, but the audit trail's last move put "
                f"{stack[-1][0]} there; someone moved the tag outside lockstep: promote "
                "explicitly")
        return None, (
            f"{stage} holds image {image or 'nothing'} and model {model or 'none'}, but the "
            f"audit trail's last move put image {stack[-1][0]} and model {stack[-1][1]} there;"
            " someone moved a tag outside lockstep: promote explicitly"
        )
    if len(stack) < 2:
        return None, f"the audit trail records no digest {stage} pointed at before {current[0]}"
    return stack[-2], ""
