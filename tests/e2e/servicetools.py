"""Helpers for the lockstep service's e2e tests (not a test module)."""

from __future__ import annotations

import time

import httpx

from tests.e2e.hubtools import Hub


def wait_for_service(hub: Hub, token: str, timeout: float = 60) -> None:
    """Until ``/services/lockstep/api/projects`` answers 200 for ``token``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{hub.url}/services/lockstep/api/projects", timeout=10,
                                 headers={"Authorization": f"token {token}"})
            if response.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the lockstep service did not answer in {timeout:.0f}s:\n"
                       f"{hub.log_tail()}")
