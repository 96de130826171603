"""CPU-bound jobs on worker processes that never import the caller's ``__main__``.

``run_all(func, jobs, workers=N)`` runs ``func(*job)`` for each job on up to ``N`` worker
processes, each started as ``python -m spawner.procpool`` and fed pickled jobs over its
stdin/stdout pipes, first come first served; results come back in input order.

Guarantees: workers are fresh interpreters (``sys.executable``): the caller's threads are
never forked (``multiprocessing``'s ``fork``) and its ``__main__`` is never re-imported
(``spawn``/``forkserver``, which break a script without an ``if __name__`` guard, such as
a JupyterHub config or a benchmark). ``func`` must be a module-level function of an
importable module. The first failure stops handing out jobs and is raised in the caller
as it was raised in the worker (``RuntimeError`` naming it when it cannot be sent back);
a worker that dies is a ``RuntimeError`` naming its exit status. Every worker is stopped
before ``run_all`` returns or raises. Only the caller's own objects cross the pipes.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Any, BinaryIO

MODULE = "spawner.procpool"
_LENGTH = struct.Struct("<Q")


def _send(stream: BinaryIO, value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream: BinaryIO) -> Any | None:
    """The next value, or None at the end of the stream."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    return pickle.loads(stream.read(length))


def _environment() -> dict[str, str]:
    """The caller's environment, with the folder holding ``spawner`` first on the path."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": here + (os.pathsep + path if path else "")}


class Workers:
    """``submit(func, *args)`` -> a ``Future`` answered by one of ``count`` worker processes
    (started on first use, reused, stopped by ``close``; a context manager). A job that
    fails fails its own future; ``close(cancel=True)`` drops the jobs not yet started."""

    def __init__(self, count: int) -> None:
        self.count = max(1, count)
        self.threads = ThreadPoolExecutor(self.count, thread_name_prefix="procpool")
        self.idle: queue.SimpleQueue[subprocess.Popen] = queue.SimpleQueue()
        self.started: list[subprocess.Popen] = []
        self.lock = threading.Lock()

    def submit(self, func: Callable[..., Any], *args: Any) -> Future:
        return self.threads.submit(self._run, func, args)

    def _worker(self) -> subprocess.Popen:
        try:
            return self.idle.get_nowait()
        except queue.Empty:
            worker = subprocess.Popen(
                [sys.executable, "-m", MODULE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=_environment(),
            )
            with self.lock:
                self.started.append(worker)
            return worker

    def _run(self, func: Callable[..., Any], args: tuple) -> Any:
        worker = self._worker()
        _send(worker.stdin, (func, args))
        reply = _receive(worker.stdout)
        if reply is None:
            raise RuntimeError(
                f"a {MODULE} worker for {func.__qualname__} ended with status "
                f"{worker.wait()} before it answered"
            )
        self.idle.put(worker)
        ok, value = reply
        if not ok:
            raise value
        return value

    def close(self, *, cancel: bool = False) -> None:
        self.threads.shutdown(wait=True, cancel_futures=cancel)
        for worker in self.started:
            worker.stdin.close()
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            worker.stdout.close()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, kind, *_) -> None:
        self.close(cancel=kind is not None)


def run_all(
    func: Callable[..., Any],
    jobs: Sequence[tuple],
    *,
    workers: int,
    done: Callable[[Any], None] | None = None,
) -> list[Any]:
    """``[func(*job) for job in jobs]`` on ``workers`` processes (in this process when
    ``workers`` is 1 or there is one job), handed out in the order given; ``done(result)``
    is called here as each ends; the first failure (in the order given) is raised once
    every worker has stopped, and stops the jobs not yet started."""
    if workers <= 1 or len(jobs) <= 1 or not sys.executable:
        results = []
        for job in jobs:
            results.append(func(*job))
            if done is not None:
                done(results[-1])
        return results
    with Workers(min(workers, len(jobs))) as pool:
        futures = [pool.submit(func, *job) for job in jobs]
        for future in as_completed(futures):
            if future.exception() is not None:
                break
            if done is not None:
                done(future.result())
    return [future.result() for future in futures]


def _answer(func: Callable[..., Any], args: tuple) -> tuple[bool, Any]:
    try:
        return True, func(*args)
    except Exception as exc:  # sent back and raised in the caller
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - an exception that cannot travel is named instead
            return False, RuntimeError(f"{type(exc).__name__}: {exc}")
        return False, exc


def main() -> int:
    """The worker: answer jobs from stdin until it closes."""
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must never land in the answers
    while (job := _receive(source)) is not None:
        func, args = job
        _send(sink, _answer(func, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
