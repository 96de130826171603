"""Deterministic bytecode for the sources a build still lacks, run inside the build sandbox.

Run by the *environment's* interpreter (stdlib only, any Python 3.8+), inside bubblewrap
(``spawner.image.sandbox``), with ``site`` off so no ``.pth`` file runs::

    STAGING/bin/python3.11 -I -S -B pycompile.py STAGING /opt/env OUT JOBS < SOURCES

``SOURCES`` lists ``lib/pythonX.Y/...py`` paths relative to ``STAGING``, one a line. For
each it writes ``OUT/<same folder>/__pycache__/NAME.cpython-XY.pyc`` as ``compileall -f
--invalidation-mode unchecked-hash -p /opt/env`` would: the recorded file name is the
final ``/opt/env/...`` path, the header holds the source hash, not a time. Files that do
not compile (Python 2 test data) are skipped, as compileall skips them. It prints
``<sources> <compiled>``.

Sources are handed to ``JOBS`` worker processes biggest first, a few at a time, so every
core stays busy to the end (compile time follows source size). It never writes under
``STAGING`` (bound read-only) and never sees the .pyc cache: the
host (``spawner.image.pyccache``) serves cache hits, moves what this writes into the
staging folder and files it in the cache. Hash seeds are fixed by the caller.
"""

import os
import py_compile
import sys
from importlib.util import cache_from_source
from multiprocessing import Pool

MODE = py_compile.PycInvalidationMode.UNCHECKED_HASH


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
    relative, staging, prefix, out = job
    cfile = cache_from_source(os.path.join(out, relative))
    try:
        py_compile.compile(
            os.path.join(staging, relative),
            cfile,
            prefix + "/" + relative,
            doraise=True,
            invalidation_mode=MODE,
        )
    except (py_compile.PyCompileError, SyntaxError, ValueError, UnicodeDecodeError):
        return 0
    return 1


def _size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def largest_first(relatives, staging):
    """The sources, biggest file first (ties by path), so no big one is left for last."""
    return sorted(relatives, key=lambda r: (-_size(os.path.join(staging, r)), r))


def main(argv):
    staging, prefix, out = argv[1].rstrip("/"), argv[2].rstrip("/"), argv[3].rstrip("/")
    jobs = int(argv[4]) if len(argv) > 4 else 1
    listed = [line for line in sys.stdin.read().splitlines() if line]
    todo = [(line, staging, prefix, out) for line in largest_first(listed, staging)]
    if jobs > 1 and len(todo) > 50:
        with Pool(jobs) as pool:
            done = sum(pool.imap_unordered(compile_one, todo, chunksize=4))
    else:
        done = sum(map(compile_one, todo))
    sys.stdout.write(f"{len(todo)} {done}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
