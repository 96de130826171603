"""Isolation runtimes: ``project.yaml``'s ``isolation`` -> the engine's OCI runtime name.

``isolation: runc`` uses the engine default; ``gvisor`` maps to ``runsc`` and ``kata`` to
``kata-runtime``. A site renames them once, in ``c.LockstepDockerSpawner.runtime_names``
(``spawner.docker.site``), and servers, jobs, services and gates all use that table
(``spawner.docker.prepare.check_host``); ``scripts/register-runtimes.sh`` registers
``lockstep-runc-alias`` (runc by another name) so the tests can prove it.
``engine_runtime`` refuses, before anything is created, a runtime the engine has not
registered, naming the fix. ``merge_runtime`` is the pure edit of
``/etc/docker/daemon.json``; ``register_runtime`` writes it and asks dockerd to reload
(SIGHUP: ``runtimes`` is a live-reloadable option), e.g.::

    python -m spawner.docker.runtimes runsc /usr/bin/runsc --network=host

Debian's runsc needs ``--network=host`` on recent kernels (gVisor issue #10704); the
sandbox then uses the container's own network namespace, which Docker still creates.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from spawner.errors import LockstepError

DEFAULT_RUNTIME_NAMES = {"runc": "", "gvisor": "runsc", "kata": "kata-runtime"}
DAEMON_JSON = "/etc/docker/daemon.json"
REGISTER_HINTS = {
    "runsc": (
        "install gVisor (`apt-get install runsc`) and register it with "
        "`python -m spawner.docker.runtimes runsc /usr/bin/runsc --network=host` (edits "
        f"{DAEMON_JSON} and reloads dockerd)"
    ),
    "kata-runtime": (
        "install Kata Containers and register it in "
        f"{DAEMON_JSON} as \"runtimes\": {{\"kata-runtime\": {{\"path\": "
        "\"/usr/bin/kata-runtime\"}}}}, then reload dockerd (`kill -HUP $(pidof dockerd)`)"
    ),
}


class RuntimeUnavailable(LockstepError):
    """The project's isolation needs a runtime the engine does not have."""


def engine_runtime(
    isolation: str, *, project: str, info: Mapping, names: Mapping[str, str] | None = None
) -> str:
    """The runtime name to put in ``HostConfig.Runtime`` ('' = engine default).

    Raises ``RuntimeUnavailable`` when ``docker info`` does not list it.
    """
    table = {**DEFAULT_RUNTIME_NAMES, **(names or {})}
    if isolation not in table:
        raise RuntimeUnavailable(
            f"project {project!r}: unknown isolation {isolation!r}; "
            f"allowed: {', '.join(sorted(table))}"
        )
    runtime = table[isolation]
    if not runtime:
        return ""
    available = sorted((info.get("Runtimes") or {}).keys())
    if runtime not in available:
        hint = REGISTER_HINTS.get(runtime, f"register {runtime!r} in {DAEMON_JSON}")
        raise RuntimeUnavailable(
            f"Project {project!r} asks for isolation {isolation!r}, which needs the "
            f"{runtime!r} runtime, but this Docker host only has: {', '.join(available)}. "
            f"To fix it, {hint}; or set isolation: runc in project.yaml."
        )
    return runtime


def merge_runtime(daemon: Mapping, name: str, path: str, args: Sequence[str] = ()) -> dict:
    """``daemon.json`` content with runtime ``name`` registered (other keys kept)."""
    entry: dict = {"path": path}
    if args:
        entry["runtimeArgs"] = list(args)
    runtimes = {**(daemon.get("runtimes") or {}), name: entry}
    return {**daemon, "runtimes": dict(sorted(runtimes.items()))}


def _dockerd_pid() -> int:
    out = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True, timeout=10)
    pids = out.stdout.split()
    if not pids:
        raise RuntimeUnavailable("dockerd is not running; start it, then register the runtime")
    return int(pids[0])


def register_runtime(
    name: str, path: str, args: Sequence[str] = (), *, daemon_json: str = DAEMON_JSON,
    reload: bool = True,
) -> bool:
    """Register ``name`` in ``daemon_json`` and SIGHUP dockerd; False if already as wanted."""
    file = Path(daemon_json)
    current = json.loads(file.read_text()) if file.is_file() and file.read_text().strip() else {}
    wanted = merge_runtime(current, name, path, args)
    if wanted == current:
        return False
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".json.lockstep-tmp")
    tmp.write_text(json.dumps(wanted, indent=2) + "\n")
    os.replace(tmp, file)
    if reload:
        os.kill(_dockerd_pid(), signal.SIGHUP)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2:
        print("usage: python -m spawner.docker.runtimes NAME PATH [RUNTIME_ARG ...]",
              file=sys.stderr)
        return 2
    changed = register_runtime(argv[0], argv[1], argv[2:])
    print(f"{argv[0]}: {'registered, dockerd reloaded' if changed else 'already registered'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
