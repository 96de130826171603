"""Run the rattler worker (``spawner.lock.worker``) in a subprocess and read its answer.

Guarantees: rattler is never imported in the calling process (py-rattler 0.28 can crash
at interpreter shutdown, which would take pytest or the hub with it); the caller's
environment is not changed; progress lines reach ``progress`` as they happen; a failure
comes back as ``WorkerError`` with the worker's ``kind`` ("unsolvable", "channel",
"install", "crash"), never as a hang: ``timeout`` bounds the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from spawner.errors import LockstepError

WORKER = Path(__file__).resolve().with_name("worker.py")
"""Run as a script (same code as ``python -m spawner.lock.worker``): it imports nothing
from lockstep, so starting it costs only the interpreter and rattler."""


class WorkerError(LockstepError):
    """The worker failed; ``kind`` says how, ``details`` carries its extra fields."""

    def __init__(self, message: str, *, kind: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.details = details or {}


def run_worker(
    request: dict,
    *,
    progress: Callable[[str], None] | None = None,
    timeout: float | None = 900,
) -> dict:
    """Send ``request`` to a fresh worker; return its result or raise ``WorkerError``."""
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            outcome = _talk(proc, json.dumps(request), progress, timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stderr.seek(0)
        err_tail = stderr.read()[-4000:].decode(errors="replace").strip()
    if outcome is None:
        raise WorkerError(
            f"the rattler worker ended (exit {proc.returncode}) without an answer"
            + (f":\n{err_tail}" if err_tail else ""),
            kind="crash",
        )
    if outcome.get("ok"):
        return outcome["result"]
    details = {k: v for k, v in outcome.items() if k not in ("event", "ok", "kind", "message")}
    raise WorkerError(
        outcome.get("message", "unknown failure"),
        kind=outcome.get("kind", "crash"),
        details=details,
    )


def _talk(proc: subprocess.Popen, request: str, progress, timeout: float | None) -> dict | None:
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        proc.kill()

    timer = threading.Timer(timeout, expire) if timeout else None
    if timer:
        timer.start()
    outcome = None
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(request.encode())
        proc.stdin.close()
        for raw in proc.stdout:
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if line.get("event") == "progress" and progress is not None:
                progress(line["message"])
            elif line.get("event") == "result":
                outcome = line
    finally:
        if timer:
            timer.cancel()
    if outcome is None and expired.is_set():
        raise WorkerError(
            f"the rattler worker did not finish within {timeout:.0f} s and was stopped; "
            "check that the channels and mirrors answer, or raise the timeout.",
            kind="timeout",
        )
    return outcome
