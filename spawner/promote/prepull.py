"""Promotion hook for Docker hosts: pull the promoted digest before the pointer moves.

With ``c.Lockstep.prepull_on_promote = True``, ``lockstep promote`` runs one more gate,
``prepull``, after every other gate: it pulls ``<source repository>@<digest>`` onto this
host's Docker engine (``spawner.docker.engine``, the only module that talks to it). It
runs before the compare-and-swap that announces the digest, so the first user who starts
the promoted stage on this host finds the image there instead of waiting for the pull. A
pull that fails fails the promotion (the hub on this host could not run the digest
either), and the message names the registry and the fix.

Guarantees: the engine is asked through ``spawner.docker.engine`` only (imported when the
gate runs, so a Kubernetes-only install never imports docker-py); an image the engine
already has is not pulled again; the gate never moves or writes a pointer. Kubernetes
nodes are pre-pulled by the pre-puller instead (``lockstep prepull``, ``spawner.kube.prepull``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from spawner.errors import LockstepError
from spawner.promote.gates import Gate, GateContext
from spawner.promote.trail import GateResult

NAME = "prepull"
PULL_TIMEOUT = 300.0  # seconds the engine may stay silent during the pull


def prepull_gate(
    settings, *, connect: Callable | None = None, progress: Callable[[str], None] | None = None
) -> Gate:
    """The ``prepull`` gate; ``connect()`` returns an engine client (default: the local one)."""
    say = progress or (lambda message: None)

    def run(ctx: GateContext) -> GateResult:
        from spawner.docker import engine

        started = time.monotonic()
        try:
            client = (connect or engine.connect)(timeout=PULL_TIMEOUT)
            try:
                pulled = engine.ensure_image(
                    client, ctx.reference, lambda message, fraction: say(message))
            finally:
                client.close()
        except LockstepError as exc:
            return GateResult(NAME, "failed", round(time.monotonic() - started, 4),
                              f"could not pull {ctx.reference} onto this Docker host: {exc}")
        verb = "pulled" if pulled else "already had"
        return GateResult(NAME, "passed", round(time.monotonic() - started, 4),
                          f"{verb} {ctx.reference} on this Docker host")

    return Gate(NAME, run)


def refresh_values(settings) -> str:
    """After a pointer moved: rewrite ``c.Lockstep.prepull_values_file`` (when set) from
    the stage pointers; what happened, in words ("" when the site wants no file). Never
    raises: the move already happened and is recorded; a failed write is reported."""
    if not settings.prepull_values_file:
        return ""
    from spawner.commands.prepull import render_values, stage_pointers, write_atomic

    path = settings.prepull_values_file
    try:
        write_atomic(path, render_values(stage_pointers(settings)))
    except (LockstepError, OSError) as exc:
        return (f"pre-puller values NOT updated ({path}): {exc}; "
                "run `lockstep prepull -o FILE` once the registry answers")
    return f"pre-puller values updated: {path}"


def hooks(settings, *, progress: Callable[[str], None] | None = None) -> list[Gate]:
    """The promotion hooks the site's settings ask for (run after the other gates)."""
    return [prepull_gate(settings, progress=progress)] if settings.prepull_on_promote else []
