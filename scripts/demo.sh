#!/usr/bin/env bash
# The run command: a local JupyterHub on Docker serving the example projects.
#
#   scripts/demo.sh           set up, build, start the hub in the foreground (Ctrl-C stops it)
#   scripts/demo.sh --check   the same, then log in as alice, spawn forecast, read its data,
#                             print OK and tear down (also: LOCKSTEP_DEMO_CHECK=1)
#   scripts/demo.sh --stop    remove the demo's containers and stop the registry
#
# Steps: scripts/setup.sh (Docker engine, venv, proxy); the offline test conda channel
# (tests/channel/build.py --cached --jupyter; LOCKSTEP_DEMO_CHANNEL=URL uses a real channel
# instead); `lockstep registry start`; `lockstep lock` (only when stale) and `lockstep build`
# (a no-op when the registry has the image) for each environments/*/, all projects at once
# (logs in $LOCKSTEP_DEMO_STATE/{lock,build}-<project>.log); `lockstep promote
# forecast --to qa`; JupyterHub with examples/jupyterhub_config.py (started while the images
# build; the banner waits for both). Each user gets their
# own password (NativeAuthenticator, users pre-created), generated once into
# $LOCKSTEP_DEMO_STATE/passwords.json (0600) and printed per user.
#
# Environment: LOCKSTEP_DEMO_STATE (~/.local/share/lockstep/demo: config, passwords, hub db
# and log), LOCKSTEP_DATA_DIR (~/.local/share/lockstep: registry storage, audit, sessions),
# LOCKSTEP_DEMO_PORT (8000), LOCKSTEP_HUB_PORT (8081), LOCKSTEP_PROXY_API_PORT (8001),
# LOCKSTEP_DEMO_IP (127.0.0.1), LOCKSTEP_DEMO_CHANNEL (a conda-forge URL or mirror).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
# The hub writes iptables rules and talks to dockerd: run as root (state then goes to root's home).
if [ "$(id -u)" != 0 ]; then exec sudo --preserve-env "$here/scripts/demo.sh" "$@"; fi

mode=run
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  --stop) mode=stop ;;
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  *) echo "scripts/demo.sh: unknown argument '$1'; use --check, --stop or nothing" >&2; exit 2 ;;
esac
if [ "$mode" = run ] && [ "${LOCKSTEP_DEMO_CHECK:-0}" = 1 ]; then mode=check; fi

log() { printf '[demo] %s\n' "$*" >&2; }
data_home=${XDG_DATA_HOME:-$HOME/.local/share}
export LOCKSTEP_DEMO_STATE=${LOCKSTEP_DEMO_STATE:-$data_home/lockstep/demo}
export LOCKSTEP_DATA_DIR=${LOCKSTEP_DATA_DIR:-$data_home/lockstep}
export LOCKSTEP_DEMO_PORT=${LOCKSTEP_DEMO_PORT:-8000}
export LOCKSTEP_HUB_PORT=${LOCKSTEP_HUB_PORT:-8081}
export LOCKSTEP_PROXY_API_PORT=${LOCKSTEP_PROXY_API_PORT:-8001}
export LOCKSTEP_DEMO_IP=${LOCKSTEP_DEMO_IP:-127.0.0.1}
export LOCKSTEP_REGISTRY=127.0.0.1:5000/lockstep   # what `lockstep registry start` serves
export LOCKSTEP_CONFIG=$LOCKSTEP_DEMO_STATE/lockstep_config.py
state=$LOCKSTEP_DEMO_STATE
url=http://$LOCKSTEP_DEMO_IP:$LOCKSTEP_DEMO_PORT
helper() { "$here/.venv/bin/python" "$here/scripts/demo.py" "$1" --state "$state" "${@:2}"; }
lockstep() { "$here/.venv/bin/lockstep" "$@"; }
hub_pid() {  # the demo hub's pid, when it is still running
  local pid
  pid=$(cat "$state/hub.pid" 2>/dev/null) && grep -qs jupyterhub "/proc/$pid/cmdline" && echo "$pid"
}

# Whether the registry at $LOCKSTEP_REGISTRY answers GET /v2/ (200 or 401), as `lockstep
# registry status` checks, without the second or so a Python command takes to start.
registry_answers() {
  local addr=${LOCKSTEP_REGISTRY%%/*} reply
  { exec 4<>"/dev/tcp/${addr%:*}/${addr##*:}"; } 2>/dev/null || return 1
  printf 'GET /v2/ HTTP/1.0\r\nHost: %s\r\n\r\n' "$addr" >&4
  IFS= read -r -t 5 reply <&4 || true
  exec 4<&-
  [[ $reply =~ ^HTTP/1\.[01]\ (200|401) ]]
}

# One project's job: `lockstep lock` when its lock is stale, then `lockstep build`; prints
# the image reference (the build's last line); the output of each goes to its log.
lock_and_build() {
  local dir=$1 project=$2
  rm -f "$state/build-$project.log"
  if ! lockstep lock --check "$dir" >/dev/null 2>"$state/lock-$project.log"; then
    log "$project: locking"
    lockstep lock "$dir" >/dev/null 2>>"$state/lock-$project.log" || return 1
  fi
  lockstep build "$dir" 2>"$state/build-$project.log" | tail -n 1
}

stop_hub() {
  local pid
  pid=$(hub_pid) || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  rm -f "$state/hub.pid"
}

if [ "$mode" = stop ]; then
  if [ ! -f "$LOCKSTEP_CONFIG" ]; then log "no demo state in $state; nothing to stop"; exit 0; fi
  stop_hub
  helper stop
  lockstep registry stop
  log "stopped. Workspace and home volumes are kept (docker volume ls --filter label=org.lockstep.managed=true);"
  log "the state (passwords, hub database) is in $state."
  exit 0
fi

began=$SECONDS
scripts/setup.sh
if pid=$(hub_pid); then
  log "a demo hub is already running (pid $pid) at $url/hub/login; scripts/demo.sh --stop stops it"
  exit 1
fi
for port in "$LOCKSTEP_DEMO_PORT" "$LOCKSTEP_HUB_PORT" "$LOCKSTEP_PROXY_API_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    log "port $port is in use; free it or choose others with LOCKSTEP_DEMO_PORT, LOCKSTEP_HUB_PORT, LOCKSTEP_PROXY_API_PORT"
    exit 1
  fi
done

if [ -n "${LOCKSTEP_DEMO_CHANNEL:-}" ]; then
  channel_url=$LOCKSTEP_DEMO_CHANNEL
  test_channel=()
  log "conda channel: $channel_url (LOCKSTEP_DEMO_CHANNEL)"
else
  log "conda channel: lockstep's offline TEST channel, standing in for conda-forge (tests/channel/build.py --cached --jupyter)"
  channel_url=file://$(.venv/bin/python tests/channel/build.py --cached --jupyter | tail -n 1)
  test_channel=(--test-channel)
fi
helper prepare --channel-url "$channel_url" "${test_channel[@]}" \
  --data-dir "$LOCKSTEP_DATA_DIR" --registry "$LOCKSTEP_REGISTRY"
LOCKSTEP_DEMO_ID=$(cat "$state/demo-id")
export LOCKSTEP_DEMO_ID

registry_was_up=0
if registry_answers; then registry_was_up=1; fi
lockstep registry start

# The hub starts now, while the images build (it reads projects and stage pointers only when
# a page or a spawn asks, after the banner); the banner waits for both.
# set -m: a process group of its own, where SIGINT is not ignored as it is for a plain
# background job (the hub stops its services with SIGINT, and waits when they ignore it)
set -m
(cd "$state" && exec "$here/.venv/bin/jupyterhub" -f "$here/examples/jupyterhub_config.py") \
  >>"$state/hub.log" 2>&1 &
hub=$!
set +m
echo "$hub" >"$state/hub.pid"
projects=() pids=()
stop_jobs() { local pid; for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done; }
teardown() {  # whenever the script ends before it hands the running hub over (run mode)
  stop_jobs
  stop_hub
  if [ "$mode" = check ]; then
    helper stop >&2 || true
    if [ "$registry_was_up" = 0 ]; then lockstep registry stop >&2 || true; fi
  fi
}
trap teardown EXIT

# Every project locks (only when stale) and builds in a job of its own, all at once: a warm
# run is mostly command start-up and registry round trips. Each job's output goes to
# $state/{lock,build}-<project>.log; the results are reported in the projects' order.
set -m  # each job in a process group of its own (what stop_jobs ends)
for dir in environments/*/; do
  project=$(basename "$dir")
  [ -f "$dir/environment.yml" ] || continue
  projects+=("$project")
  lock_and_build "$dir" "$project" >"$state/ref-$project" &
  pids+=($!)
done
set +m
failed=0
for i in "${!projects[@]}"; do
  project=${projects[$i]}
  if wait "${pids[$i]}"; then
    log "$project: dev = $(tail -n 1 "$state/ref-$project") ($(tail -n 1 "$state/build-$project.log"))"
  else
    cat "$state/lock-$project.log" "$state/build-$project.log" >&2 2>/dev/null || true
    log "$project: lock or build failed"
    failed=1
  fi
done
rm -f "${projects[@]/#/$state/ref-}"
if [ "$failed" = 1 ]; then exit 1; fi
# Show the stages: forecast's dev image goes to qa once its gates pass (verify, notebooks);
# a no-op when qa already points at it. A refusal leaves dev, which is enough to spawn.
if moved=$(lockstep promote forecast --to qa 2>"$state/promote.log" | tail -n 1); then
  log "forecast: $moved"
else
  log "forecast: not promoted to qa (see $state/promote.log); dev is still there to spawn"
fi
log "images ready after $((SECONDS - began))s"

if [ "$mode" = check ]; then
  helper banner --url "$url" --pid "$hub" --then-check
  log "check passed in $((SECONDS - began))s"
  exit 0  # teardown: the hub, the demo's containers, the registry when this run started it
fi

helper banner --url "$url" --pid "$hub"  # on failure, teardown stops the hub
trap - EXIT
trap 'kill -TERM "$hub" 2>/dev/null || true' INT TERM
log "up in $((SECONDS - began))s"
wait "$hub" || true
wait "$hub" 2>/dev/null || true   # after Ctrl-C: let the hub finish shutting down
rm -f "$state/hub.pid"
log "hub stopped; user servers keep running and are re-adopted by the next scripts/demo.sh."
log "scripts/demo.sh --stop removes them and stops the registry."
