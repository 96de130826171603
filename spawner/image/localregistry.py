"""The local registry: Debian's ``docker-registry`` on 127.0.0.1:5000, as a background process.

Guarantees: ``start`` is idempotent (a registry already answering on the address is left
alone) and returns only once ``/v2/`` answers; state lives in ``<data_dir>/registry``:
``config.yml`` (generated), ``storage/``, ``registry.pid``, ``registry.log``. Deleting
manifests is enabled (rollback and retagging may need it). ``stop`` ends only the process
whose pid this module recorded.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from spawner.errors import LockstepError

BINARY = "/usr/bin/docker-registry"
DEFAULT_ADDR = "127.0.0.1:5000"


@dataclass(frozen=True)
class RegistryStatus:
    address: str
    running: bool
    pid: int | None
    root: str
    managed: bool  # started by lockstep (our pidfile names a live process)


def render_config(*, storage: Path, addr: str) -> str:
    """The registry's YAML config (pure)."""
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        "storage:\n"
        f"  filesystem:\n    rootdirectory: {storage}\n"
        "  delete:\n    enabled: true\n"
        "  cache:\n    blobdescriptor: inmemory\n"
        "http:\n"
        f"  addr: {addr}\n"
        "  headers:\n    X-Content-Type-Options: [nosniff]\n"
    )


def answers(addr: str, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(f"http://{addr}/v2/", timeout=timeout).status_code in (200, 401)
    except httpx.HTTPError:
        return False


def _pid(root: Path) -> int | None:
    try:
        pid = int((root / "registry.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def status(root: Path, addr: str = DEFAULT_ADDR) -> RegistryStatus:
    pid = _pid(Path(root))
    return RegistryStatus(addr, answers(addr), pid, str(root), pid is not None)


def start(root: Path, addr: str = DEFAULT_ADDR, *, wait: float = 20.0) -> RegistryStatus:
    """Start the registry unless one already answers on ``addr``; wait until it does."""
    root = Path(root)
    if answers(addr):
        return status(root, addr)
    binary = shutil.which("docker-registry") or BINARY
    if not Path(binary).exists():
        raise LockstepError(
            f"{BINARY} is not installed; install it with `apt-get install docker-registry`"
        )
    (root / "storage").mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    config.write_text(render_config(storage=root / "storage", addr=addr))
    with open(root / "registry.log", "ab") as log:
        proc = subprocess.Popen(
            [binary, "serve", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (root / "registry.pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if answers(addr, timeout=0.5):
            return status(root, addr)
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    tail = (root / "registry.log").read_text(errors="replace")[-1500:]
    raise LockstepError(
        f"the registry did not start on {addr} (log {root / 'registry.log'}):\n{tail}\n"
        "If another program holds the port, stop it or set c.Lockstep.registry to another one."
    )


def stop(root: Path, addr: str = DEFAULT_ADDR, *, wait: float = 10.0) -> bool:
    """Stop the registry this module started; False when there was none."""
    root = Path(root)
    pid = _pid(root)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        try:  # reap it when it is our child (tests start it in-process)
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    (root / "registry.pid").unlink(missing_ok=True)
    return True
