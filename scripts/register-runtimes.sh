#!/usr/bin/env bash
# Register secure-container runtimes with dockerd through /etc/docker/daemon.json:
# gVisor's runsc always (when installed), kata when kata-runtime is installed, and
# lockstep-runc-alias: runc under another name, so the tests can show that a site's
# c.LockstepDockerSpawner.runtime_names reach servers, jobs, services and gates alike
# (tests/docker/test_site_runtime.py).
# A running dockerd is told with SIGHUP (no restart, running containers untouched).
# runsc gets --network=host: measured on the reference host, runsc's own network stack
# (netstack) refuses to start any container ("cannot run with network enabled in root
# network namespace"). The container still has its own namespace on the project bridge and
# lockstep's iptables rules (docs/production.md, "gVisor on Docker").
set -euo pipefail
conf=/etc/docker/daemon.json
python3 - "$conf" <<'PY'
import json, os, shutil, sys
path = sys.argv[1]
try:
    with open(path) as f:
        conf = json.load(f)
except FileNotFoundError:
    conf = {}
runtimes = conf.setdefault("runtimes", {})
want = {}
if shutil.which("runsc"):
    want["runsc"] = {"path": shutil.which("runsc"), "runtimeArgs": ["--network=host"]}
if shutil.which("kata-runtime"):
    want["kata-runtime"] = {"path": shutil.which("kata-runtime")}
if shutil.which("runc"):
    want["lockstep-runc-alias"] = {"path": shutil.which("runc")}
changed = any(runtimes.get(k) != v for k, v in want.items())
runtimes.update(want)
if changed:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(conf, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
    print("changed")
PY
if pid=$(pidof dockerd); then kill -HUP "$pid"; fi
