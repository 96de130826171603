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
exec .venv/bin/python -m pytest -ra --durations=15 "${@:-tests}"
