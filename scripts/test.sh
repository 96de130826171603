#!/usr/bin/env bash
# The test command: set up everything (apt, venv, npm, dockerd) and run the whole suite.
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/unit -x`. tests/packaging builds
# a second venv (JupyterHub 5, lockstep[kube] only) once, cached under ~/.cache/lockstep/venvs.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/setup.sh
mkdir -p artifacts
export PYTHONUNBUFFERED=1
# setup.sh started dockerd, the proxy and the rest: an engine test that finds one missing
# fails (tests/support/engine.py), it is never skipped
export LOCKSTEP_REQUIRE_ENGINE=1
# Two workers: the tests that share the Docker engine, the registry and host iptables run
# one at a time in one "engine" group (tests/conftest.py); the pure ones run beside them.
# LOCKSTEP_TEST_WORKERS=0 runs everything in this one process.
workers=${LOCKSTEP_TEST_WORKERS:-2}
parallel=()
if [ "$workers" != 0 ]; then parallel=(-n "$workers" --dist loadgroup); fi
exec .venv/bin/python -m pytest "${parallel[@]}" -ra --durations=15 "${@:-tests}"
