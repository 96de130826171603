"""Moving a stage's model tag with its image tag: the model half of a promotion.

``spawner.promote.core`` calls these under the (project, stage) lock, next to the image
tag's compare-and-swap: ``read_models`` before the gates, ``move_model`` (compare-and-swap
on ``model-<stage>``, through ``pointers.move_pointer``, so blobs are mounted or copied
and the digest kept) before the image tag moves, and ``restore_model`` when the image move
then fails, so a refused or failed promotion leaves both tags as they were.

A stage with no model (``None``) moves no model: the target's ``model-<stage>`` tag is left
as it is (removing a tag would delete the artifact), and the record carries no model.
"""

from __future__ import annotations

from dataclasses import dataclass

from spawner.image.registry import RegistryError
from spawner.models.pairs import model_tag
from spawner.promote.pointers import Endpoint, PointerError, move_pointer, read_pointer


@dataclass(frozen=True)
class ModelPair:
    """The source stage's model and the target stage's model, as read before the gates."""

    source: str | None
    target: str | None

    @property
    def moves(self) -> bool:
        return self.source is not None and self.source != self.target

    def record_fields(self) -> dict:
        """``model_digest``/``previous_model_digest`` for the trail (None: no model moved)."""
        if self.source is None:
            return {"model_digest": None, "previous_model_digest": None}
        return {"model_digest": self.source, "previous_model_digest": self.target}


def read_models(source: Endpoint, from_stage: str, target: Endpoint, to_stage: str) -> ModelPair:
    return ModelPair(read_pointer(source, model_tag(from_stage)),
                     read_pointer(target, model_tag(to_stage)))


def move_model(*, source: Endpoint, target: Endpoint, from_stage: str, to_stage: str,
               pair: ModelPair) -> int:
    """Point ``model-<to_stage>`` at the source's model if both tags are as read; bytes moved."""
    if not pair.moves:
        return 0
    now = read_pointer(source, model_tag(from_stage))
    if now != pair.source:
        raise PointerError(
            f"{source.name}:{model_tag(from_stage)} moved from {pair.source} to {now} while "
            "the gates ran; run the promotion again")
    move = move_pointer(source=source, target=target, stage=model_tag(to_stage),
                        digest=str(pair.source), expected=pair.target)
    return move.bytes_moved


def restore_model(target: Endpoint, to_stage: str, pair: ModelPair) -> str:
    """Put ``model-<to_stage>`` back after the image move failed; a note for the message."""
    if not pair.moves or pair.target is None:
        return ""
    try:
        move_pointer(source=target, target=target, stage=model_tag(to_stage),
                     digest=pair.target, expected=pair.source)
    except (RegistryError, PointerError) as exc:
        return (f"; the model tag {model_tag(to_stage)} could not be put back to "
                f"{pair.target} ({exc}): run `lockstep rollback` or promote again")
    return ""
