"""Deterministic bytecode for the sources a build still lacks, run inside the build sandbox.

Run by the *environment's* interpreter (stdlib only, any Python 3.8+), inside bubblewrap
(``spawner.image.sandbox``), with ``site`` off so no ``.pth`` file runs::

    STAGING/bin/python3.11 -I -S -B pycompile.py STAGING /opt/env JOBS < SOURCES > FRAMES

``SOURCES`` lists ``lib/pythonX.Y/...py`` paths relative to ``STAGING``, one a line, read
as the host writes them until it closes the input. For the i-th source (counted in the
order given) it writes one frame to standard output as soon as it is compiled::

    b"<i> <n>\\n" followed by n bytes: the .pyc, or b"<i> -1\\n": it does not compile

The .pyc is what ``py_compile`` writes with ``--invalidation-mode unchecked-hash``, as
``compileall -f -p /opt/env`` calls it (in a process with this script's imports: below):
the recorded file name is the final ``/opt/env/...`` path, the header holds the
source hash, not a time. Files that do not compile (Python 2 test data) get ``-1``, as
compileall skips them.

Sources are compiled by ``JOBS`` worker processes (forked, one even for ``JOBS`` 1), each
taking the next source as it is free and writing its frame itself, whole, under a lock:
frames come in the order sources finish, so the host can write a layer as soon as its
sources are done, and the .pyc bytes cross no pipe but the one to the host. It writes no
file at all: the sandbox gives it no writable folder, and the host
(``spawner.image.bytecode``) reads the frames, checks them and decides where the bytes
go. Hash seeds are fixed by the caller.

Why always a worker: marshal marks a constant shared by its reference count, and CPython
merges equal constants differently when strings they hold are already interned in the
process (e.g. ``"gzip"`` once ``shutil`` is imported): the same source compiled in this
script's main process and in a worker can differ (10 bytes of aiohttp's
``multipart.py``). A worker's imports are the same on every host whatever ``JOBS`` is,
and what it compiled before does not matter, since each code object is freed; so the
bytes depend on the source, its final path and the interpreter, not on the host's cores.
"""

import multiprocessing
import os
import sys
from importlib.machinery import SourceFileLoader
from importlib.util import source_hash

try:  # the one place the stdlib turns a code object into hash-based .pyc bytes
    from importlib._bootstrap_external import _code_to_hash_pyc
except ImportError:  # pragma: no cover - every CPython since 3.7 has it
    _code_to_hash_pyc = None


def sources(root):
    """Every ``*.py`` under ``root``, sorted, symlinked folders and ``__pycache__`` skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d != "__pycache__" and not os.path.islink(os.path.join(dirpath, d))
        )
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py"))
    return found


def compile_one(job):
    """``(relative, staging, prefix)`` -> the .pyc bytes, or None when it does not compile."""
    relative, staging, prefix = job
    path = os.path.join(staging, relative)
    # the steps of py_compile.compile, with the recorded name held in a local as it holds
    # it: marshal marks an object shared by its reference count, so this keeps the bytes
    # those of ``compileall`` exactly
    dfile = prefix + "/" + relative
    loader = SourceFileLoader("<py_compile>", path)
    try:
        data = loader.get_data(path)
        code = loader.source_to_code(data, dfile, _optimize=-1)
    except Exception:  # as compileall: what does not compile is skipped
        return None
    return bytes(_code_to_hash_pyc(code, source_hash(data), False))


def _size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def largest_first(relatives, staging):
    """The sources, biggest file first (ties by path), so no big one is left for last."""
    return sorted(relatives, key=lambda r: (-_size(os.path.join(staging, r)), r))


def frame(index, data):
    """The frame for the ``index``-th source: its header and .pyc, or ``-1``."""
    if data is None:
        return b"%d -1\n" % index
    return b"%d %d\n" % (index, len(data)) + data


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _work(todo, lock, staging, prefix):
    """A worker: compile what ``todo`` hands out until ``None``; each frame written whole."""
    while (item := todo.get()) is not None:
        index, relative = item
        data = frame(index, compile_one((relative, staging, prefix)))
        with lock:
            _write_all(1, data)


def _listed(stream):
    """The sources as the host feeds them: read as they come, until it closes the input."""
    for line in stream:
        line = line.rstrip("\n")
        if line:
            yield line


def main(argv):
    staging, prefix = argv[1].rstrip("/"), argv[2].rstrip("/")
    jobs = max(int(argv[3]) if len(argv) > 3 else 1, 1)
    context = multiprocessing.get_context("fork")  # the sandbox is Linux
    todo, lock = context.SimpleQueue(), context.Lock()
    workers = [
        context.Process(target=_work, args=(todo, lock, staging, prefix), daemon=True)
        for _ in range(jobs)
    ]
    for worker in workers:
        worker.start()
    for index, relative in enumerate(_listed(sys.stdin)):
        todo.put((index, relative))
    for _ in workers:
        todo.put(None)
    for worker in workers:
        worker.join()
    return 0 if all(worker.exitcode == 0 for worker in workers) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
