"""Deterministic bytecode for a staged env, with a content-addressed .pyc cache.

Run by the *environment's* interpreter (stdlib only, any Python 3.8+)::

    STAGING/bin/python3.11 -I -B pycompile.py STAGING /opt/env CACHE_DIR [JOBS]

For every ``*.py`` under ``STAGING/lib/pythonX.Y`` (symlinked folders not followed, as
``compileall`` does) it writes ``__pycache__/NAME.cpython-XY.pyc`` as
``compileall -f --invalidation-mode unchecked-hash -s STAGING -p /opt/env`` would: the
recorded file name is the final ``/opt/env/...`` path, the header holds the source hash,
not a time. A .pyc is a function of (interpreter build, final path, source bytes); that
triple keys ``CACHE_DIR``, so a package already compiled by an earlier build costs a copy.
Files that do not compile (Python 2 test data) are skipped, as compileall skips them.
Every write is a new file renamed into place: staged sources are hardlinks into the
package cache and are never opened for writing. Hash seeds are fixed by the caller.
"""

import hashlib
import importlib.util
import os
import py_compile
import sys
from multiprocessing import Pool

MODE = py_compile.PycInvalidationMode.UNCHECKED_HASH


def sources(root):
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d != "__pycache__" and not os.path.islink(os.path.join(dirpath, d))
        )
        found.extend(os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py"))
    return found


def _put(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def compile_one(job):
    source, staging, prefix, cache = job
    dfile = prefix + source[len(staging) :]
    cfile = importlib.util.cache_from_source(source)
    with open(source, "rb") as fh:
        data = fh.read()
    key = hashlib.sha256(
        importlib.util.MAGIC_NUMBER + sys.version.encode() + b"\0" + dfile.encode() + b"\0" + data
    ).hexdigest()
    cached = os.path.join(cache, key[:2], key + ".pyc")
    if os.path.isfile(cached):
        with open(cached, "rb") as fh:
            _put(cfile, fh.read())
        return 1
    try:
        py_compile.compile(source, cfile, dfile, doraise=True, invalidation_mode=MODE)
    except (py_compile.PyCompileError, SyntaxError, ValueError, UnicodeDecodeError):
        return 0
    with open(cfile, "rb") as fh:
        _put(cached, fh.read())
    return 0


def main(argv):
    staging, prefix, cache = argv[1].rstrip("/"), argv[2].rstrip("/"), argv[3]
    jobs = int(argv[4]) if len(argv) > 4 else (os.cpu_count() or 1)
    version = "python{}.{}".format(*sys.version_info[:2])
    todo = [(s, staging, prefix, cache) for s in sources(os.path.join(staging, "lib", version))]
    if jobs > 1 and len(todo) > 50:
        with Pool(jobs) as pool:
            hits = sum(pool.imap_unordered(compile_one, todo, chunksize=32))
    else:
        hits = sum(map(compile_one, todo))
    sys.stdout.write(f"{len(todo)} {hits}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
