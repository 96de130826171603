"""Run inside the build sandbox by the environment's own python: one PEP 517 wheel build.

Usage: ``python -I pipbuildhook.py SOURCE OUT BACKEND [BACKEND_PATH...]``. Imports the
build backend (``module:object``) from the environment (or the sdist's ``backend-path``)
and calls its ``build_wheel(OUT)`` in ``SOURCE``; prints ``LOCKSTEP-WHEEL <file name>``.
A backend the environment lacks exits 3 with ``LOCKSTEP-MISSING <module>``. This file
must stay standalone (the standard library only; no lockstep imports): it runs under the
environment's interpreter, which need not be the one lockstep runs on.
"""

import importlib
import os
import sys


def main(argv):
    source, out, backend, paths = argv[1], argv[2], argv[3], argv[4:]
    os.chdir(source)
    sys.path[:0] = [os.path.join(source, p) for p in paths]
    module, _, attr = backend.partition(":")
    try:
        hooks = importlib.import_module(module)
    except ImportError as exc:
        print(f"LOCKSTEP-MISSING {module} ({exc})", file=sys.stderr)
        return 3
    for part in filter(None, attr.split(".")):
        hooks = getattr(hooks, part)
    name = hooks.build_wheel(out)
    print(f"LOCKSTEP-WHEEL {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
