"""``OwnedObjects``: LockstepDockerSpawner touches only the containers it made for its server.

DockerSpawner finds "its" container by ``object_name`` alone: ``get_object`` (used by
``poll``, ``stop`` and the removal of a stopped server) inspects whatever container has that
name and adopts its id, and lockstep's start removed "a leftover container" of that name.
Names no longer collide (``spawner.docker.ownership``), and this mixin is the second wall:
a container under the name counts only when its labels say lockstep made it as this user's
server of this name. Anything else is never stopped, adopted or removed: ``get_object``
answers None (logged), and the start is refused with a 409 that names the container.

Mixed in before ``DockerSpawner`` (so ``super().get_object()`` is DockerSpawner's); it uses
the spawner's ``client``, ``object_name``, ``user``, ``name``, ``log`` and ``_refuse``, and
talks to the engine only through ``spawner.docker.engine``.
"""

from __future__ import annotations

import asyncio

from spawner.docker import engine as dockerops
from spawner.docker.ownership import NotOurs, leftover_verdict


class OwnedObjects:
    """``get_object`` and the leftover removal, limited to this server's own container."""

    async def get_object(self):
        """DockerSpawner's lookup by ``object_name``, except that a container there which
        lockstep did not make for this user's server (a service's, another user's) is not
        this server's: None, so it is never stopped or removed."""
        before = self.object_id
        found = await super().get_object()
        if found is None:
            return None
        try:
            leftover_verdict(found, name=self.object_name, user=self.user.name,
                             server=self.name or "")
        except NotOurs as exc:
            self.object_id = "" if before == found.get("Id") else before
            self.log.warning("lockstep: %s", exc)
            return None
        return found

    async def _remove_leftover(self) -> None:
        """Remove a container under ``object_name`` only if it is this server's own leftover;
        409 naming it otherwise (before the new container is created)."""
        found = await asyncio.to_thread(dockerops.inspect_container, self.client,
                                        self.object_name)
        try:
            mine = leftover_verdict(found, name=self.object_name, user=self.user.name,
                                    server=self.name or "")
        except NotOurs as exc:
            self._refuse(str(exc), 409, "name")
        if mine and await asyncio.to_thread(dockerops.remove_container, self.client, found["Id"]):
            self.log.warning("lockstep: removed leftover container %s", self.object_name)
