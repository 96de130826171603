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
# Two processes, one per core: the tests that share the Docker engine, the registry and host
# iptables (marked "engine" by tests/conftest.py) run one at a time in this one; the pure
# tests run beside them in a second, whose report follows this one's.
# LOCKSTEP_TEST_WORKERS=1 runs everything in this one process.
if [ "${LOCKSTEP_TEST_WORKERS:-2}" = 1 ]; then
  exec .venv/bin/python -m pytest -ra --durations=15 "${@:-tests}"
fi
pure_log=artifacts/pure-tests.log
.venv/bin/python -m pytest -m "not engine" -ra --durations=10 "${@:-tests}" >"$pure_log" 2>&1 &
pure=$!
trap 'kill "$pure" 2>/dev/null || true' EXIT
engine_rc=0
.venv/bin/python -m pytest -m engine -ra --durations=15 "${@:-tests}" || engine_rc=$?
pure_rc=0
wait "$pure" || pure_rc=$?
trap - EXIT
echo "==================== the pure tests (run beside the engine tests) ===================="
cat "$pure_log"
# 5: nothing collected in one half (e.g. `scripts/test.sh tests/unit/lock`) is not a failure
for rc in "$engine_rc" "$pure_rc"; do
  if [ "$rc" != 0 ] && [ "$rc" != 5 ]; then exit "$rc"; fi
done
if [ "$engine_rc" = 5 ] && [ "$pure_rc" = 5 ]; then exit 5; fi
exit 0
