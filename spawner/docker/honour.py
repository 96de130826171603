"""DockerSpawner's traits on a starting lockstep server: gathered, checked, and pulled by.

A mixin of ``LockstepDockerSpawner``. ``_inherited`` reads the parent's traits as
DockerSpawner would (callables called with the spawner and awaited, ``{username}``
templates filled by ``format_volume_name``/``_render_templates``), turns them into the
pure ``inherited.Inherited`` and refuses the spawn (500, naming each trait) when they
weaken hardening without ``allow_weakening``; ``_ensure_image`` honours ``pull_policy``.
It must not render the container body (``render`` does).
"""

from __future__ import annotations

import asyncio
import inspect

from spawner.docker import engine as dockerops
from spawner.docker.inherited import Inherited, from_traits, owned_keys, weakenings
from spawner.docker.inherited import refusal as weakening_refusal
from spawner.errors import LockstepError
from spawner.launch import pointercache


class HonourParentTraits:
    """DockerSpawner's traits for one spawn (mixed into the spawner)."""

    async def _trait(self, name: str):
        """A DockerSpawner trait's value: a callable is called (and awaited) with the spawner."""
        value = self._eval_if_callable(getattr(self, name))
        return await value if inspect.isawaitable(value) else value

    async def _inherited(self) -> Inherited:
        """DockerSpawner's traits for this spawn (callables called, ``{username}`` templates
        filled, ``spawner.docker.inherited``); refused when they weaken hardening."""
        def fill(volumes: dict) -> dict:
            return {self.format_volume_name(k, self): v if not isinstance(v, str) else
                    self.format_volume_name(v, self) for k, v in volumes.items()}

        mounts = [{**m, "source": self.format_volume_name(m.get("source") or "", self),
                   "target": self.format_volume_name(m["target"], self)}
                  if "target" in m else m for m in self.mounts]
        inherited = from_traits(
            extra_host_config=self._render_templates(await self._trait("extra_host_config")),
            extra_create_kwargs=self._render_templates(await self._trait("extra_create_kwargs")),
            volumes=fill(self.volumes), read_only_volumes=fill(self.read_only_volumes),
            mounts=mounts, links=self.links, mem_limit=self.mem_limit, cpu_limit=self.cpu_limit,
            mem_guarantee=self.mem_guarantee, cpu_guarantee=self.cpu_guarantee,
            network_name=self._site_network)
        message = weakening_refusal(weakenings(inherited), self.allow_weakening,
                                    owned_keys(inherited))
        if message:
            self._refuse(message, 500, "config")
        return inherited

    async def _ensure_image(self, reference: str) -> dict[str, str] | None:
        """DockerSpawner's ``pull_policy``: ifnotpresent (default), always, never, skip. The
        image's config labels, from the inspect that finds it (after a pull: one inspect
        more); None with ``skip``, which touches no image (``launch.landing`` falls back)."""
        policy = self.pull_policy.lower()
        if policy == "skip":
            return None
        if policy != "always":
            labels = await asyncio.to_thread(dockerops.image_labels, self.client, reference)
            if labels is not None:
                return labels
        if policy == "never":
            self._refuse(f"{reference} is not on this Docker host and pull_policy is 'never'; "
                         f"pull it (`docker pull {reference}`) or set "
                         "c.LockstepDockerSpawner.pull_policy = 'ifnotpresent'", 500, "pull")
        await self._pull(reference)
        return await asyncio.to_thread(dockerops.image_labels, self.client, reference)

    async def _pull(self, reference: str) -> None:
        if self._registry_notice:  # not there and not reachable: fail now, not at the timeout
            self._refuse(pointercache.pull_refusal(reference, self._registry_notice), 503,
                         "registry")
        self._emit(f"Pulling {reference}", 10)
        loop = asyncio.get_running_loop()

        def report(message: str, fraction: float) -> None:
            loop.call_soon_threadsafe(self._emit, message, 10 + int(60 * fraction))

        try:
            await asyncio.to_thread(dockerops.pull, self.client, reference, report)
        except (LockstepError, Exception) as exc:
            self._refuse(f"could not pull {reference}: {exc}", 500, "pull")
        self._emit("Image pulled", 70)
