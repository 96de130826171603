#!/usr/bin/env bash
# Set up everything lockstep needs on a Debian 12 machine, idempotently:
#   apt packages (Docker engine, registry, debootstrap, gVisor, skopeo, patchelf, chromium,
#   Podman for the GPU/CDI engine tests),
#   a Python venv in .venv with lockstep, all its extras and the test tools, pinned by
#   constraints.txt and installed with uv, configurable-http-proxy (npm),
#   a running dockerd with the gVisor runtime registered.
# Safe to run again: each step checks first. Set LOCKSTEP_SKIP_APT=1 to skip apt.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
log() { printf '[setup] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

APT_PACKAGES=(docker.io docker-registry debootstrap runsc skopeo patchelf binutils libstdc++6 iptables
              chromium chromium-driver zstd git ca-certificates podman bubblewrap)
CHP_VERSION=5.3.0

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ] && [ "${LOCKSTEP_SKIP_APT:-0}" != 1 ]; then
  log "apt-get install ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
# Exact versions come from constraints.txt (pyproject.toml has only compatible ranges).
# Re-install when either file is newer than the marker, or when an import is missing
# (found or not by importlib, without importing: that took ~5 s on each run).
if ! .venv/bin/python -c "import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))" \
       spawner rattler conda_lock docker kubespawner kmock uv 2>/dev/null \
   || [ pyproject.toml -nt .venv/.lockstep-installed ] \
   || [ constraints.txt -nt .venv/.lockstep-installed ]; then
  # uv resolves and installs the same pinned set as pip in a fifth of the time (~12 s
  # against 60+ s); it is itself pinned in constraints.txt and installed by the venv's pip,
  # which stays in the venv for whoever needs it. uv reads SSL_CERT_FILE for a site CA.
  # --compile-bytecode: write the .pyc files now, as pip does; without them every Python
  # process (hub, CLI, test) compiles what it imports again under PYTHONDONTWRITEBYTECODE.
  if [ ! -x .venv/bin/uv ]; then
    log "pip install -c constraints.txt uv"
    .venv/bin/pip install -q --disable-pip-version-check -c constraints.txt uv
  fi
  log "uv pip install -c constraints.txt -e .[docker,kube,build,test]"
  .venv/bin/uv pip install -q --compile-bytecode --python .venv/bin/python -c constraints.txt \
    -e ".[docker,kube,build,test]"
  touch .venv/.lockstep-installed
fi

if ! command -v configurable-http-proxy >/dev/null 2>&1; then
  log "npm install -g configurable-http-proxy@${CHP_VERSION}"
  as_root npm install -g --silent "configurable-http-proxy@${CHP_VERSION}" >/dev/null
fi

# gVisor: register runsc with the engine (Debian's runsc needs --network=host here,
# gVisor issue #10704; the container keeps its own network namespace).
as_root "$here/scripts/register-runtimes.sh"

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  # its own session: a job runner that ends this shell's process group must not take dockerd
  as_root sh -c 'setsid -f dockerd >>/var/log/lockstep-dockerd.log 2>&1 </dev/null'
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see /var/log/lockstep-dockerd.log"; exit 1; }
fi
log "ready: $(docker version --format 'engine {{.Server.Version}}'), $(.venv/bin/lockstep --help >/dev/null && echo 'lockstep installed')"
