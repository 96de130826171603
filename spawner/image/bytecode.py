"""An environment's bytecode: cache hits as bytes, the rest compiled in the build sandbox
and streamed back, each .pyc handed to the caller as soon as it is compiled.

``prepare(staging, cache_dir=...)`` finds the sources, reads the cached .pyc of each one
the cache holds (``pyccache``) and returns a ``Bytecode`` naming the sources still to
compile. ``Bytecode.start(first)`` runs ``pycompile`` as ``python -I -S -B`` under the
sandbox (``"bwrap"``, or ``"none"``: unsafe) with the staging folder read-only and
nothing writable, fed the sources named in ``first``; ``Compiler.add`` feeds the rest (so
a caller starts the compiler before it knows the best order for the rest); a thread reads
the frames as they come. Iterating the ``Compiler`` gives ``(relative, pyc bytes or
None)`` as each is compiled, in the order they finish;
``Compiler.finish()`` waits for the sandbox to exit and, only when it exited cleanly and
sent a frame for every source, files what it compiled in the cache.

``compile_bytecode`` does all of it and writes the .pyc files into the staging folder
(for a caller that wants files: the ``docker build`` baseline, tests).

Guarantees: the bytes are what ``py_compile`` writes, a function of the source, its final
path and the interpreter, whatever the host's cores and the order sources are fed
(``pycompile`` says why it always compiles in a worker); the compiler can only send
bytes, which the host checks frame by frame (an index it fed and has no answer for yet,
length bounded) and places itself; a sandbox that
fails, sends something else, does not start or runs past ``timeout`` is a
``LockstepError`` naming the fix, and nothing it sent is cached.
"""

from __future__ import annotations

import fcntl
import os
import queue
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from spawner.errors import LockstepError
from spawner.image import pyccache
from spawner.image.pycompile import largest_first
from spawner.image.sandbox import require_sandbox, sandboxed
from spawner.image.staging import python_version
from spawner.settings import ENV_PREFIX

PYCOMPILE = Path(__file__).with_name("pycompile.py")
INSIDE = "/run/lockstep/pycompile.py"
MAX_PYC = 64 << 20
"""The largest .pyc a frame may carry (the biggest real ones are a few MiB)."""
PIPE_SIZE = 1 << 20
"""How much compiled bytecode may wait in the pipe and in the host's read buffer."""


@dataclass
class Bytecode:
    """What one staged environment's bytecode needs (``prepare``)."""

    staging: Path
    runner: Path  # the env whose python compiles (this one, or the host's for a foreign one)
    version: str
    store: pyccache.PycStore
    total: int = 0
    hits: dict[str, bytes] = field(default_factory=dict)  # source -> cached .pyc
    missing: list[pyccache.Source] = field(default_factory=list)

    @property
    def tag(self) -> str:
        return "cpython-" + self.version.replace(".", "")

    def start(
        self,
        first: list[str] | None = None,
        *,
        sandbox: str = "bwrap",
        timeout: float = 900,
        jobs: int | None = None,
    ) -> Compiler:
        """Start compiling the ``missing`` sources named in ``first`` (their ``relative``
        paths), in that order; ``Compiler.add`` feeds the rest. Default: all of them,
        biggest first, and no more to come."""
        bwrap = require_sandbox(sandbox)
        compiler = Compiler(
            {s.relative: s for s in self.missing},
            self._argv(bwrap, jobs),
            bwrap=bwrap,
            timeout=timeout,
            store=self.store,
        )
        if first is None:
            compiler.add(largest_first([s.relative for s in self.missing], str(self.staging)))
        else:
            compiler.add(first, last=False)
        return compiler

    def _argv(self, bwrap: str | None, jobs: int | None):
        python = self.runner / "bin" / f"python{self.version}"
        script = INSIDE if bwrap else str(PYCOMPILE)
        jobs = jobs or os.cpu_count() or 1
        command = [str(python), "-I", "-S", "-B", script, str(self.staging), ENV_PREFIX,
                   str(jobs)]  # fmt: skip
        runner = [self.runner] if self.runner != self.staging else []
        return sandboxed(
            command,
            bwrap=bwrap,
            read_only=[self.staging, *runner, (PYCOMPILE, script)],
            env={"PYTHONHASHSEED": "0", "SOURCE_DATE_EPOCH": "0"},
        )


class Compiler:
    """One sandboxed run of ``pycompile``: sources fed in (``add``), frames read back as
    they arrive, in any order, each source answered once."""

    def __init__(self, missing: dict, argv_env, *, bwrap, timeout: float, store) -> None:
        self.missing, self.bwrap, self.timeout, self.store = missing, bwrap, timeout, store
        self.items: list[pyccache.Source] = []
        self.results: dict[int, bytes | None] = {}  # by the source's index in ``items``
        self.arrived: list[int] = []  # those indexes, in the order their frames came
        self.ready = threading.Condition()
        self.error: LockstepError | None = None
        self.done = self.fed = False
        self.deadline = time.monotonic() + timeout
        argv, env = argv_env
        self.stderr = tempfile.TemporaryFile()
        # frames are read by a thread that must take the GIL back after each read: from a
        # big buffer, filled from a big pipe, it waits once per chunk, not twice per frame
        # (the compiler's workers block on a full pipe meanwhile)
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, bufsize=PIPE_SIZE,
                                     stdout=subprocess.PIPE, stderr=self.stderr)  # fmt: skip
        _widen(self.proc.stdout)
        self.reader = threading.Thread(target=self._read, name="pycompile-frames", daemon=True)
        self.reader.start()
        # the sandbox takes its input only as fast as it hands sources to its workers: a
        # thread of its own writes it, so ``add`` never waits and frames are taken meanwhile
        self.feed: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.writer = threading.Thread(target=self._write, name="pycompile-feed", daemon=True)
        self.writer.start()

    def add(self, relatives: list[str], *, last: bool = True) -> None:
        """Feed more of the missing sources (``last``: no more after these; by then each
        must have been fed once). Returns at once."""
        items = [self.missing[relative] for relative in relatives]
        with self.ready:
            self.items.extend(items)  # before the sandbox can answer for them
        self.feed.put("".join(f"{s.relative}\n" for s in items).encode())
        if last:
            if sorted(s.relative for s in self.items) != sorted(self.missing):
                self.close()
                raise ValueError("each missing source must be fed to the compiler once")
            self.fed = True
            self.feed.put(None)

    def _write(self) -> None:
        try:
            while (chunk := self.feed.get()) is not None:
                self.proc.stdin.write(chunk)
                self.proc.stdin.flush()
            self.proc.stdin.close()
        except OSError:
            pass  # the sandbox is gone: finish() says why

    def _read(self) -> None:
        try:
            while (frame := _frame(self.proc.stdout)) is not _END:
                index, data = frame
                with self.ready:
                    if index >= len(self.items):
                        raise _protocol(f"frame {index} answers no source sent")
                    if index in self.results:
                        raise _protocol(f"frame {index} answers a source a second time")
                    self.results[index] = data
                    self.arrived.append(index)
                    self.ready.notify_all()
        except LockstepError as err:
            self.error = err
            self.proc.kill()
        except (OSError, ValueError):  # the sandbox died: finish() reads why from its exit
            pass
        finally:
            with self.ready:
                self.done = True
                self.ready.notify_all()

    def __iter__(self) -> Iterator[tuple[str, bytes | None]]:
        """``(relative, .pyc bytes or None)`` for every source as it is compiled, once all
        are fed."""
        if not self.fed:
            raise ValueError("feed the last sources (add) before reading the results")
        for position in range(len(self.items)):
            with self.ready:
                while len(self.arrived) <= position and not self.done:
                    if not self.ready.wait(timeout=max(self.deadline - time.monotonic(), 0)):
                        self._stop()
                if len(self.arrived) <= position:
                    return  # finish() says why
                index = self.arrived[position]
            yield self.items[index].relative, self.results[index]

    def _stop(self) -> None:
        self.proc.kill()
        raise LockstepError(
            f"compiling the environment's bytecode took more than {self.timeout:.0f} s and "
            "was stopped; a package may be hostile or broken (check the lock's recent changes)."
        )

    def finish(self) -> dict[str, bytes]:
        """Wait for the sandbox; on a clean exit with every frame, file the .pyc bytes in
        the cache and return them by source; else raise."""
        try:
            code = self.proc.wait(timeout=max(self.deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            self._stop()
        self.reader.join()
        self.stderr.seek(0)
        output = self.stderr.read().decode("utf-8", "replace")
        self.stderr.close()
        if self.error is not None:
            raise self.error
        if code != 0:
            _failed(code, self.bwrap, output)
        if len(self.results) != len(self.items):
            raise _protocol(f"it exited after {len(self.results)} of {len(self.items)} frames")
        pairs = [(item, self.results[index]) for index, item in enumerate(self.items)
                 if self.results[index] is not None]  # fmt: skip
        self.store.put((item.key, data) for item, data in pairs)
        return {item.relative: data for item, data in pairs}

    def close(self) -> None:
        """Stop the sandbox if it still runs (a caller that gave up on it)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.feed.put(None)  # the feeding thread ends (its write fails once the sandbox is gone)


def _widen(pipe) -> None:
    """Make ``pipe`` hold ``PIPE_SIZE`` (Linux; kept as it is where that is refused)."""
    try:
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # above /proc/sys/fs/pipe-max-size: the default size works, more slowly


_END = object()


def _frame(stream):
    """Read one frame, ``(index, .pyc bytes)``: ``b"<index> <n>\\n"`` then n bytes, or
    ``b"<index> -1\\n"`` (None: it does not compile); ``_END`` at the end of the output."""
    header = stream.readline(64)
    if not header:
        return _END
    parts = header.split()
    if len(parts) != 2 or not header.endswith(b"\n") or not parts[0].isdigit():
        raise _protocol(f"a frame has the header {header[:40]!r}")
    index = int(parts[0])
    if parts[1] == b"-1":
        return index, None
    if not parts[1].isdigit() or int(parts[1]) > MAX_PYC:
        raise _protocol(f"frame {index} claims {parts[1][:20]!r} bytes")
    data = stream.read(int(parts[1]))
    if len(data) != int(parts[1]):
        raise OSError("the compiler's output ended inside a frame")
    return index, data


def _protocol(what: str) -> LockstepError:
    return LockstepError(
        f"the bytecode compiler in the build sandbox sent something that is not a .pyc "
        f"frame ({what}); the environment's python is broken or hostile, so its image was "
        "not built. Check the lock's recent changes to python and its dependencies."
    )


def _failed(code: int, bwrap, output: str) -> None:
    where = "in the build sandbox (bwrap) " if bwrap else ""
    hint = (
        " If bwrap itself could not start (e.g. 'creating new namespace' above), the "
        "build host must allow user namespaces (sysctl kernel.unprivileged_userns_clone=1"
        "; on Ubuntu 24.04 an AppArmor profile for bwrap)."
        if bwrap
        else ""
    )
    raise LockstepError(
        f"compiling the environment's bytecode {where}failed ({code}); the "
        f"environment's python did not run cleanly, so its image was not built.{hint}\n"
        f"{output[-2000:]}"
    )


def prepare(
    staging: Path, *, cache_dir: Path, interpreter: Path | None = None, tests: bool = True
) -> Bytecode | None:
    """What ``staging`` needs compiled; None when the env has no python.

    ``interpreter``: another staged env whose python (same ``major.minor``, checked by the
    caller: ``index.compile_plan``) compiles this one's sources, for a platform this host
    cannot run; its .pyc cache is shared, since the bytes are the same. ``tests=False``
    leaves packages' test suites (``pyccache.is_test_source``) without .pyc files."""
    staging = Path(staging)
    version = python_version(staging)
    runner = Path(interpreter) if interpreter is not None else staging
    if version is None or not (runner / "bin" / f"python{version}").exists():
        return None
    store = pyccache.store_for(cache_dir, pyccache.interpreter_identity(runner, version))
    job = Bytecode(staging, runner, version, store)
    job.total, job.hits, job.missing = pyccache.serve_hits(
        staging, version, store=store, prefix=ENV_PREFIX, tests=tests
    )
    return job


def compile_bytecode(
    staging: Path,
    *,
    cache_dir: Path,
    sandbox: str = "bwrap",
    timeout: float = 900,
    jobs: int | None = None,
    interpreter: Path | None = None,
    tests: bool = True,
) -> tuple[int, int]:
    """``prepare``, compile, and write every .pyc into ``staging``; returns (sources,
    cache hits), (0, 0) when the env has no python."""
    job = prepare(staging, cache_dir=cache_dir, interpreter=interpreter, tests=tests)
    if job is None:
        return 0, 0
    compiled: dict[str, bytes] = {}
    if job.missing:
        compiler = job.start(sandbox=sandbox, timeout=timeout, jobs=jobs)
        try:
            for _ in compiler:
                pass
            compiled = compiler.finish()
        finally:
            compiler.close()
    for relative, data in {**job.hits, **compiled}.items():
        pyccache.put(pyccache.pyc_path(staging, relative, job.tag), data, mode=0o644)
    return job.total, len(job.hits)
