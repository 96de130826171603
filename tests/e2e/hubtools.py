"""Helpers for the e2e tests: a JupyterHub subprocess and running code in a kernel."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-" + uuid.uuid4().hex
RUN_ID = uuid.uuid4().hex[:8]
PASSWORD = "e2e-password"  # SharedPasswordAuthenticator: users 8+ characters
ADMIN_PASSWORD = "e2e-admin-password-" + uuid.uuid4().hex  # admins: 32+, not PASSWORD
GROUPS = {"alpha-team": ["bob"], "everyone": ["alice", "bob", "carol"]}
PROGRESS_LINE = re.compile(r"lockstep \S+: \+\d+\.\d+s (.*)$", re.MULTILINE)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Hub:
    """A JupyterHub subprocess on free ports, configured by ``spawner.docker.hubconfig``;
    ``settings`` are more ``c.Lockstep`` values, set before ``configure`` (so they reach
    the lockstep service too)."""

    def __init__(self, root: Path, registry: str, settings: dict | None = None):
        self.root = root
        self.public_port, self.hub_port, self.api_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.public_port}"
        self.log_path = root / "hub.log"
        self.proc: subprocess.Popen | None = None
        state = root / "state"
        state.mkdir(exist_ok=True)
        extra = "".join(f"c.Lockstep.{k} = {v!r}\n" for k, v in (settings or {}).items())
        config = f"""{extra}
from spawner.docker.hubconfig import configure
configure(c, environments_dir={str(root / 'environments')!r},
          data_roots=[{str(root / 'data')!r}], data_dir={str(state)!r},
          registry={registry + '/lockstep'!r}, users={GROUPS!r}, admins=["admin"],
          password={PASSWORD!r}, admin_password={ADMIN_PASSWORD!r},
          api_token={TOKEN!r}, state_dir={str(state)!r},
          public_port={self.public_port}, hub_port={self.hub_port},
          proxy_api_port={self.api_port}, idle_timeout=3600)
c.LockstepDockerSpawner.extra_labels = {{"org.lockstep-e2e.run": {RUN_ID!r}}}
c.JupyterHub.log_level = "DEBUG"
"""
        (root / "jupyterhub_config.py").write_text(config)

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        log = open(self.log_path, "a")  # noqa: SIM115 - kept open for the subprocess
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", "jupyterhub_config.py"],
            cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/hub/api/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"hub did not answer in 60s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_size(self) -> int:
        """Bytes in the hub log now: pass it to ``progress_logged`` after a spawn."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def progress_logged(self, since: int) -> list[str]:
        """The spawners' progress lines (``lockstep <server>: +0.12s <message>``, every line
        the spawn page shows) written to the hub log after byte ``since``: unlike the event
        stream, the log cannot miss the lines of a spawn that ends before a reader attaches."""
        with open(self.log_path, "rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        return [m.group(1) for m in PROGRESS_LINE.finditer(text)]

    def login(self, user: str, password: str) -> httpx.Client:
        """An httpx client holding ``user``'s login cookie (through the hub's login form, as a
        browser does) and the XSRF header the hub wants on its form posts; close it after."""
        client = httpx.Client(base_url=self.url, timeout=120)
        client.get("/hub/login").raise_for_status()
        xsrf = client.cookies.get("_xsrf", path="/hub/")
        done = client.post("/hub/login", data={"username": user, "password": password,
                                               "_xsrf": xsrf})
        assert done.status_code == 302 and "/hub/login" not in done.headers["location"], \
            f"login of {user}: {done.status_code} {done.text[:500]}"
        client.headers["X-XSRFToken"] = client.cookies.get("_xsrf", path="/hub/") or xsrf
        return client

    def log_tail(self, lines: int = 150) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def api(self, method: str, path: str, body=None, token: str = TOKEN) -> httpx.Response:
        return httpx.request(method, f"{self.url}/hub/api{path}", json=body, timeout=120,
                             headers={"Authorization": f"token {token}"})

    def server(self, user: str, name: str = "") -> dict | None:
        return (self.api("GET", f"/users/{user}").json().get("servers") or {}).get(name)

    def spawn(self, user: str, options: dict, name: str = "") -> tuple[httpx.Response, float]:
        """Request a server and wait until it is ready; returns (response, seconds)."""
        began = time.monotonic()
        path = f"/users/{user}/servers/{name}" if name else f"/users/{user}/server"
        response = self.api("POST", path, options)
        if response.status_code in (201, 202):
            while time.monotonic() - began < 300:
                server = self.server(user, name)
                if server and server.get("ready"):
                    break
                if not server:
                    raise RuntimeError(f"spawn of {user}/{name} failed:\n{self.log_tail()}")
                time.sleep(0.05)
        return response, time.monotonic() - began

    def spawn_with_progress(self, user: str, options: dict, name: str = ""):
        """``spawn`` while reading the progress event stream; returns (response, s, events)."""
        import threading

        result: dict = {}
        def run() -> None:
            result["response"], result["seconds"] = self.spawn(user, options, name)

        worker = threading.Thread(target=run)
        worker.start()
        events: list[dict] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and worker.is_alive():
            server = self.server(user, name)
            if server and server.get("pending") == "spawn":
                path = f"/users/{user}/servers/{name}/progress" if name else \
                    f"/users/{user}/server/progress"
                with httpx.stream("GET", f"{self.url}/hub/api{path}", timeout=300,
                                  headers={"Authorization": f"token {TOKEN}"}) as stream:
                    for line in stream.iter_lines():
                        if line.startswith("data:"):
                            events.append(json.loads(line[5:]))
                break
            time.sleep(0.02)
        worker.join()
        return result["response"], result["seconds"], events

    def stop_server(self, user: str, name: str = "") -> None:
        path = f"/users/{user}/servers/{name}" if name else f"/users/{user}/server"
        self.api("DELETE", path)
        deadline = time.monotonic() + 60
        while self.server(user, name) and time.monotonic() < deadline:
            time.sleep(0.2)

    def server_url(self, user: str, name: str = "") -> str:
        return f"{self.url}/user/{user}/{name + '/' if name else ''}"


async def _execute(ws_url: str, token: str, code: str, timeout: float) -> dict:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    conn = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization":
                                                                f"token {token}"}))
    msg_id = uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "e2e", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))
    out = {"stdout": "", "stderr": "", "error": None, "status": None}
    idle = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
        if raw is None:
            break
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out[content["name"]] += content["text"]
        elif kind == "error":
            out["error"] = f"{content['ename']}: {content['evalue']}"
        elif kind == "execute_reply":
            out["status"] = content["status"]
        elif kind == "status" and content.get("execution_state") == "idle":
            idle = True
        if out["status"] is not None and idle:  # the reply (shell) can overtake the
            break  # output (iopub): done when the kernel is idle again after this request
    conn.close()
    return out


def run_code(hub: Hub, user: str, code: str, name: str = "", timeout: float = 60) -> dict:
    """Start a kernel on the user's server through the proxy, run ``code``, return output."""
    base = hub.server_url(user, name)
    headers = {"Authorization": f"token {TOKEN}"}
    kernel = httpx.post(f"{base}api/kernels", json={"name": "python3"}, headers=headers,
                        timeout=60)
    assert kernel.status_code == 201, kernel.text
    kernel_id = kernel.json()["id"]
    try:
        ws = base.replace("http://", "ws://") + f"api/kernels/{kernel_id}/channels"
        return asyncio.run(_execute(ws, TOKEN, code, timeout))
    finally:
        httpx.delete(f"{base}api/kernels/{kernel_id}", headers=headers, timeout=30)
