"""What a lockstep server persists in the Hub's database, the same shape on every backend.

``get_state()`` of both spawners stores ``{"lockstep": LaunchState.to_dict()}`` beside the
parent's own keys (DockerSpawner's ``object_id``/``object_name``, KubeSpawner's
``pod_name``...), so a hub can tell which project, stage, digest and lock a server runs on
whatever engine runs it. :func:`from_state` also reads the shapes written before this
module existed (the Kubernetes spawner's flat ``lockstep_*`` keys), so an upgrade never
loses a running server. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

KEY = "lockstep"
LEGACY_FLAT = {"lockstep_project": "project", "lockstep_stage": "stage",
               "lockstep_image": "image", "lockstep_lock_hash": "lock_hash",
               "lockstep_session": "session"}


@dataclass(frozen=True)
class LaunchState:
    """The persisted facts of one launch. ``engine`` holds backend-only facts (the Docker
    network, say) that the other backend ignores."""

    project: str = ""
    stage: str = ""
    image: str = ""
    """``REPO@sha256:...``: what the server runs."""
    lock_hash: str = ""
    session: str = ""
    started: str = ""
    engine: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return self.image.partition("@")[2]

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v}


def from_state(state: dict[str, Any]) -> LaunchState | None:
    """The launch recorded in a spawner's state, or None when there is none."""
    raw = state.get(KEY)
    if isinstance(raw, dict) and raw:
        known = {k: raw[k] for k in ("project", "stage", "image", "lock_hash", "session",
                                     "started") if raw.get(k)}
        engine = dict(raw.get("engine") or {})
        for legacy in ("network",):  # the Docker spawner's shape before LaunchState
            if raw.get(legacy):
                engine.setdefault(legacy, str(raw[legacy]))
        return LaunchState(**{k: str(v) for k, v in known.items()}, engine=engine)
    flat = {new: str(state[old]) for old, new in LEGACY_FLAT.items() if state.get(old)}
    return LaunchState(**flat) if flat else None
