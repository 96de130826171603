"""Run a real ``jupyterhub -f`` on a config and return how it ended (for hub-start checks).

The config gets a preamble that keeps the hub on loopback, its files in the test's own
folder and starts no proxy, so a hub that wrongly starts leaves nothing behind; a hub
still running after 60 s is killed and the test fails. A helper, not a test module.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_hub(tmp_path: Path, body: str) -> tuple[int, str]:
    """Run ``jupyterhub -f`` on a config of ``body`` after the preamble; (exit status, log)."""
    (tmp_path / "jupyterhub_config.py").write_text(
        f'c.JupyterHub.db_url = "sqlite:///{tmp_path}/hub.sqlite"\n'
        f'c.JupyterHub.bind_url = "http://127.0.0.1:{free_port()}"\n'
        f'c.JupyterHub.hub_bind_url = "http://127.0.0.1:{free_port()}"\n'
        f'c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"\n'
        "c.ConfigurableHTTPProxy.should_start = False\n" + body
    )
    try:
        done = subprocess.run(
            [sys.executable, "-m", "jupyterhub", "-f", "jupyterhub_config.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the hub did not stop at start:\n{exc.stderr}")
    return done.returncode, done.stderr + done.stdout
