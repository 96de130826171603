"""Small adapters between lockstep and KubeSpawner: errors, client objects, progress.

Pure apart from what it is handed; it talks to no cluster and reads no settings.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from spawner.hubcompat import SpawnException
from spawner.launch import access
from spawner.launch.options import OptionsError


class JsonText:
    """What ``ApiClient.deserialize`` reads: an object with ``.data`` holding JSON text."""

    def __init__(self, obj: Any) -> None:
        self.data = json.dumps(obj)


def refusal_error(refusal: access.LaunchRefused | OptionsError) -> SpawnException:
    """The policy failure JupyterHub shows to the user, with the refusal's HTTP status."""
    error = SpawnException(str(refusal), status_code=refusal.status,
                           reason="forbidden" if refusal.status == 403 else "options")
    error.jupyterhub_message = str(refusal)  # type: ignore[attr-defined]
    return error


async def with_notice(events: AsyncIterator[dict], notice: Callable[[], str]):
    """``events``, led by ``notice()`` once it is set (it is set during the launch, which may
    begin after the hub starts reading progress), and told once even with no event."""
    told = False
    async for event in events:
        if notice() and not told:
            told = True
            yield {"progress": 3, "message": notice()}
        yield event
    if notice() and not told:
        yield {"progress": 3, "message": notice()}
