"""Progress of long CLI work (``lockstep lock``, ``install``, ``build``), in three forms.

* **terminal** (the stream is a TTY): each step is a line; counts that move within a step
  (packages downloaded, layers written, bytes pushed) rewrite one live line in place
  (``\\r`` and erase-to-end-of-line), which the next step line replaces;
* **plain** (a pipe, a file, CI logs): one plain line per step, never a ``\\r``, never a
  per-item line: the counts appear once, in the line that ends the step;
* **quiet** (``--json``): nothing at all, so stdout holds only the JSON document.

A ``Progress`` is a ``Callable[[str], None]``, the shape every ``progress=`` parameter in
lockstep takes; library code calls ``live(progress, text)`` for in-step counts, which is a
no-op for a plain callable. Guarantees: thread-safe (pushes report from worker threads),
writes only to the stream it was given, and never raises for a closed or odd stream's
``isatty``. This module must not import anything from lockstep.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TextIO

ERASE = "\r\033[K"


def human_bytes(count: float) -> str:
    """``1536`` -> ``1.5 KB``; decimal units, one decimal above bytes."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{int(count)} B" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"  # pragma: no cover - the loop always returns


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class Progress:
    """Step lines and live counts on ``stream`` (see the module docstring)."""

    def __init__(
        self, stream: TextIO | None = None, *, quiet: bool = False, prefix: str = ""
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.prefix = prefix
        self.terminal = not quiet and _isatty(self.stream)
        self._live = False
        self._lock = threading.Lock()

    @property
    def mode(self) -> str:
        return "quiet" if self.quiet else "terminal" if self.terminal else "plain"

    def __call__(self, message: str) -> None:
        """One step: a line of its own."""
        if self.quiet:
            return
        with self._lock:
            head = ERASE if self._live else ""
            self._live = False
            self.stream.write(f"{head}{self.prefix}{message}\n")
            self.stream.flush()

    def update(self, message: str) -> None:
        """A count within a step: rewrites the live line on a terminal, else nothing."""
        if not self.terminal:
            return
        with self._lock:
            self._live = True
            self.stream.write(f"{ERASE}{self.prefix}{message}")
            self.stream.flush()

    def close(self) -> None:
        """End a pending live line (so the shell prompt starts on a line of its own)."""
        with self._lock:
            if self._live:
                self.stream.write(ERASE)
                self.stream.flush()
                self._live = False


def live(progress: Callable[[str], None] | None, message: str) -> None:
    """Report an in-step count to ``progress`` if it shows them (a ``Progress``)."""
    update = getattr(progress, "update", None)
    if update is not None:
        update(message)


class Counter:
    """Counts items (and bytes) done out of ``total``, reporting each as a live update."""

    def __init__(self, progress, verb: str, total: int, noun: str = "packages") -> None:
        self.progress, self.verb, self.total, self.noun = progress, verb, total, noun
        self.done = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def add(self, nbytes: int = 0) -> None:
        with self._lock:
            self.done += 1
            self.bytes += nbytes
            text = f"{self.verb} {self.done}/{self.total} {self.noun}"
            if self.bytes:
                text += f", {human_bytes(self.bytes)}"
        live(self.progress, text)
