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
# LOCKSTEP_TEST_WORKERS=1 runs everything in this one process.
if [ "${LOCKSTEP_TEST_WORKERS:-}" = 1 ]; then
  exec .venv/bin/python -m pytest -ra --durations=15 "${@:-tests}"
fi
# Three processes at once. The tests that share the Docker engine, a registry, host iptables
# or a real hub (marked "engine" by tests/conftest.py) run one at a time in two lanes that
# share no fixed name (the table in tests/conftest.py): "hubs" here, on the default registry
# (LOCKSTEP_TEST_REGISTRY or 127.0.0.1:5000, which scripts/demo.sh uses), and "images" beside
# it on a registry port of its own; the pure tests run in a third. Each lane labels its
# containers with its name and removes only those (tests/support/engine.py) and has its own
# pytest basetemp. The reports of "images" and the pure tests follow this one's.
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/lockstep-tests.XXXXXX")
images_port=$(.venv/bin/python -c \
  'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
pure_log=artifacts/pure-tests.log
images_log=artifacts/images-tests.log
hubs_log=artifacts/hubs-tests.log
.venv/bin/python -m pytest -m "not engine" -ra --durations=10 "${@:-tests}" >"$pure_log" 2>&1 &
pure=$!
LOCKSTEP_TEST_LANE=images LOCKSTEP_TEST_REGISTRY=127.0.0.1:$images_port \
  .venv/bin/python -m pytest -m "engine and lane_images" -ra --durations=15 \
  --basetemp="$run_dir/images" "${@:-tests}" >"$images_log" 2>&1 &
images=$!
trap 'kill "$pure" "$images" 2>/dev/null || true' EXIT
set +e
LOCKSTEP_TEST_LANE=hubs .venv/bin/python -m pytest -m "engine and lane_hubs" -ra \
  --durations=15 --basetemp="$run_dir/hubs" "${@:-tests}" 2>&1 | tee "$hubs_log"
hubs_rc=${PIPESTATUS[0]}
set -e
images_rc=0
wait "$images" || images_rc=$?
pure_rc=0
wait "$pure" || pure_rc=$?
trap - EXIT
echo "==================== engine lane \"images\" (run beside the hubs) ===================="
cat "$images_log"
echo "==================== the pure tests (run beside the engine lanes) ===================="
cat "$pure_log"
took() { tail -n 1 "$1" | grep -o ' in [0-9.]*s' || echo " (no summary)"; }
echo "lockstep tests: hubs rc $hubs_rc$(took "$hubs_log"), images rc $images_rc$(took \
  "$images_log"), pure rc $pure_rc$(took "$pure_log"); ${SECONDS}s in all (setup included)"
# 5: nothing collected in one process (e.g. `scripts/test.sh tests/unit/lock`) is no failure
failed=0
for rc in "$hubs_rc" "$images_rc" "$pure_rc"; do
  if [ "$rc" != 0 ] && [ "$rc" != 5 ]; then failed=$rc; fi
done
if [ "$failed" != 0 ]; then
  echo "the lanes' temp files are kept for a look: $run_dir"
  exit "$failed"
fi
rm -rf --one-file-system "$run_dir"
if [ "$hubs_rc" = 5 ] && [ "$images_rc" = 5 ] && [ "$pure_rc" = 5 ]; then exit 5; fi
exit 0
