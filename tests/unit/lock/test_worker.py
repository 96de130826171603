"""The rattler worker subprocess: failures come back as errors, never as hangs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from spawner.lock.runner import WorkerError, run_worker

REPO = Path(__file__).resolve().parents[3]


def test_a_crash_in_the_worker_is_reported_with_its_kind():
    with pytest.raises(WorkerError) as err:
        run_worker({"op": "no-such-operation"}, timeout=60)
    assert err.value.kind == "crash"
    assert "KeyError: 'no-such-operation'" in str(err.value)


def test_the_worker_also_runs_as_a_module():
    done = subprocess.run(
        [sys.executable, "-m", "spawner.lock.worker"],
        input='{"op": "no-such-operation"}',
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    answer = json.loads(done.stdout.splitlines()[-1])
    assert done.returncode == 3 and answer["ok"] is False and answer["kind"] == "crash"


@pytest.fixture
def silent_server():
    """An HTTP 'channel' that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/chan"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_hanging_channel_hits_the_timeout(silent_server, tmp_path):
    request = {
        "op": "solve",
        "channels": [silent_server],
        "cache_dir": str(tmp_path / "repodata"),
        "jobs": [{"platform": "linux-64", "specs": ["alpha"], "virtual_packages": []}],
    }
    with pytest.raises(WorkerError) as err:
        run_worker(request, timeout=3)
    assert err.value.kind == "timeout"
    assert "did not finish within 3 s" in str(err.value)


def test_rattler_is_never_imported_here():
    assert "rattler" not in sys.modules
