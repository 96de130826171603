"""Helpers for the notebook-reopen e2e tests (not a test module): give a project the lock
its image was built from (so its servers get Lab and the root ``/``), save and read
notebooks through a server's contents API, ask the lockstep service, wait for a named
server, and find the open notebook in JupyterLab's page."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from spawner.launch.spec import HOME
from tests.e2e.hubtools import TOKEN, Hub

SERVICE = "/services/lockstep/"
HOME_PATH = HOME.strip("/")  # the home folder, seen from a server whose root is /
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def use_lock_of(hub: Hub, project: str, image_dir: Path) -> None:
    """Copy the spec and lock an image was built from into ``project``'s folder: the
    spawner then knows the image has JupyterLab (``launch.landing``)."""
    folder = hub.root / "environments" / project
    for name in ("environment.yml", "conda-lock.yml"):
        (folder / name).write_bytes((image_dir / name).read_bytes())


def notebook(text: str, metadata: dict | None = None) -> dict:
    """A minimal nbformat 4 notebook with one code cell (python3 kernel, so Lab opens it
    without asking which kernel)."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": KERNEL, **(metadata or {})},
        "cells": [
            {
                "cell_type": "code",
                "id": "c1",
                "metadata": {},
                "source": text,
                "outputs": [],
                "execution_count": None,
            }
        ],
    }


def save_notebook(hub: Hub, user: str, path: str, content: dict, server: str = "") -> dict:
    """PUT a notebook through the server's contents API (what Lab's save does)."""
    return _put(hub, user, server, path, {"type": "notebook", "format": "json",
                                          "content": content})  # fmt: skip


def save_raw(hub: Hub, user: str, path: str, text: str) -> None:
    """PUT a file as plain text: no pre-save hook runs on it (a forged notebook)."""
    _put(hub, user, "", path, {"type": "file", "format": "text", "content": text})


def _put(hub: Hub, user: str, server: str, path: str, body: dict) -> dict:
    response = httpx.put(
        f"{hub.server_url(user, server)}api/contents/{path}",
        timeout=60,
        json=body,
        headers={"Authorization": f"token {TOKEN}"},
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def read_notebook(hub: Hub, user: str, path: str, server: str = "") -> dict:
    response = httpx.get(
        f"{hub.server_url(user, server)}api/contents/{path}",
        timeout=60,
        headers={"Authorization": f"token {TOKEN}"},
    )
    assert response.status_code == 200, response.text
    return response.json()["content"]


def names_at(hub: Hub, user: str, path: str, server: str = "") -> set[str]:
    """The names in folder ``path`` of a server (its contents API)."""
    response = httpx.get(
        f"{hub.server_url(user, server)}api/contents/{path}",
        timeout=60,
        headers={"Authorization": f"token {TOKEN}"},
    )
    assert response.status_code == 200, response.text
    return {item["name"] for item in response.json()["content"]}


def reopen(hub: Hub, token: str, location: str, path: str, project: str = "e2e-alpha"):
    """``POST api/reopen`` for a notebook, as the owner of ``token``."""
    body = {"project": project, "location": location, "path": path}
    return service(hub, "POST", "api/reopen", token, body)


def notebook_panel(driver, wait, text: str):
    """JupyterLab's visible notebook panel once its cells show ``text`` (a cell's source)."""
    script = (
        "const p = [...document.querySelectorAll('.jp-NotebookPanel')]"
        ".find(e => !e.classList.contains('lm-mod-hidden'));"
        "return p && p.querySelector('.jp-Cell') && p.textContent.includes(arguments[0])"
        " ? p : null;"
    )
    return wait.until(lambda d: d.execute_script(script, text))


def kernel_idle(driver, wait) -> str:
    """JupyterLab's status bar once the notebook's kernel reports Idle (it runs in the
    server, so on the server's image)."""
    script = (
        "const b = document.querySelector('#jp-main-statusbar');"
        "return b && b.textContent.includes('Idle') ? b.textContent : null;"
    )
    return wait.until(lambda d: d.execute_script(script))


def current_tab(driver) -> str:
    """The label of JupyterLab's current main-area tab."""
    return driver.execute_script(
        "const t = document.querySelector('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current');"
        "return t ? t.textContent : '';"
    )


def service(hub: Hub, method: str, path: str, token: str, body: dict | None = None):
    return httpx.request(
        method,
        f"{hub.url}{SERVICE}{path}",
        json=body,
        timeout=180,
        headers={"Authorization": f"token {token}"},
    )


def wait_ready(hub: Hub, user: str, server: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = hub.server(user, server)
        if found and found.get("ready"):
            return found
        time.sleep(0.3)
    raise AssertionError(f"{user}/{server} was not ready in {timeout:.0f}s:\n{hub.log_tail()}")


def container_of(docker_api, user: str, server: str) -> dict:
    """The one lockstep container of ``user``'s server ``server``."""
    found = [
        c
        for c in docker_api.containers(filters={"label": "org.lockstep.managed=true"})
        if c["Labels"].get("org.lockstep.user") == user
        and c["Labels"].get("org.lockstep.server-name") == server
    ]
    assert len(found) == 1, found
    return found[0]
