"""One-shot containers: created for one job, and always removed, however the job ends.

lockstep runs short-lived containers in four places: the job of ``lockstep run``, the
notebooks gate, the volume-ownership helper of ``spawner.docker.prepare`` and the SBOM's
``conda-meta`` reader. ``one_shot`` is the one way to hold such a container: it creates it
from a rendered body and removes it on a normal exit, on an error, on Ctrl-C and on
SIGTERM turned into ``KeyboardInterrupt`` (by id once known; by name when interrupted
between the create call and its answer). ``run_to_end`` is the common case on top: start,
wait (bounded), collect the output.

This module talks to the engine only through ``spawner.docker.engine``; it must not import
docker-py, and it decides nothing about what the container may do (the body does).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from spawner.docker import engine
from spawner.docker.engine import EngineError


@dataclass(frozen=True)
class Finished:
    """How a one-shot container ended: its exit code and its output (stdout + stderr)."""

    code: int
    output: str


@contextmanager
def one_shot(api, body: Mapping[str, Any], *, name: str | None = None) -> Iterator[str]:
    """Create a container from ``body`` (named ``name``, else anonymous), yield its id, and
    remove it when the block ends. A removal failure after a failed block is not allowed to
    hide the block's own error."""
    container = ""
    try:
        container = engine.create_container(api, dict(body), name)
        yield container
    except BaseException:
        if container or name:
            try:
                engine.remove_container(api, container or name or "")
            except EngineError:
                pass  # the engine is gone too; the block's error says more
        raise
    engine.remove_container(api, container)


def run_to_end(api, body: Mapping[str, Any], *, timeout: float,
               name: str | None = None) -> Finished:
    """Start a one-shot container, wait up to ``timeout`` seconds for it to exit, and return
    its exit code and output; ``EngineTimeout`` when it runs longer. Always removed."""
    with one_shot(api, body, name=name) as container:
        engine.start_container(api, container)
        code = engine.wait_container(api, container, timeout=timeout)
        return Finished(code, engine.container_logs(api, container, tail="all"))
