"""``LockstepDockerSpawner``: JupyterHub spawns a project's locked image on Docker.

Glue only. At spawn time it reads the user's choice (``spawnoptions``), checks the user may
use the project (403 otherwise, before anything is created), resolves the stage to a digest
(``stages``), checks the engine can honour GPU and isolation requests (``gpu``,
``runtimes``), resolves data sources (``datamounts``), builds the engine-neutral
``LaunchSpec`` (``launch``), renders it (``render_docker``) and hands the body to the engine.
It pulls by digest with progress on the spawn page, boots at most ``start_slots`` servers
at once (booting is CPU-bound: a queue gets most users in sooner than a crowd), waits until
the server answers so the Hub's own back-off wait returns at once, and records the session
(``sessions``).

State persisted in the Hub database (``get_state``): the container's name and id plus
project, stage, digest, lock hash, network and session id, so a restarted Hub re-adopts
running servers (the Hub never stops servers on its own shutdown). An explicit stop
removes the container; home and workspace live in named volumes and survive.

Site settings come from ``c.Lockstep.*`` in ``jupyterhub_config.py``; spawner options are
the traits below (``c.LockstepDockerSpawner.*``). DockerSpawner traits that would weaken
hardening are refused by name at hub start by :func:`check_config`, the last line of
``jupyterhub_config.py`` (``hubconfig.configure`` calls it; the twin of
``spawner.kube.spawner.check_config``), again when a spawner is created and at each spawn
(callables).
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import NoReturn

from dockerspawner import DockerSpawner
from traitlets import default

from spawner import sessions
from spawner.docker import engine as dockerops
from spawner.docker.boot import POLL_FIRST, POLL_MOST, Booting, _Slot, port_open  # noqa: F401
from spawner.docker.firewall import gateway_of
from spawner.docker.honour import HonourParentTraits
from spawner.docker.owned import OwnedObjects
from spawner.docker.prepare import Prepared, PrepareError, check_host, prepare
from spawner.docker.render import DockerOptions, for_server, render_container
from spawner.docker.site import DockerSite
from spawner.docker.traits import LockstepDockerTraits, check_config, check_site_config
from spawner.errors import LockstepError
from spawner.hubcompat import SpawnException
from spawner.labels import SERVER_NAME, SESSION, is_lockstep_key
from spawner.launch import access, choice, landing, projectfacts
from spawner.launch.catalog import Catalog, load_catalog, log_invalid
from spawner.launch.datamounts import site_data_sources
from spawner.launch.options import (
    OptionsError,
    check_user_options,
    options_from_form,
    render_form,
    request_for,
)
from spawner.launch.spec import (
    GpuRequest,
    Hardening,
    ImageRef,
    LaunchOptions,
    build_launch_spec,
    safe_slug,
)
from spawner.launch.state import LaunchState, from_state
from spawner.project import Project
from spawner.settings import ENV_PREFIX, Lockstep

__all__ = ["LockstepDockerSpawner", "check_config"]


class LockstepDockerSpawner(Booting, HonourParentTraits, OwnedObjects, DockerSpawner,
                            LockstepDockerTraits):
    """Spawn ``environments/<project>`` images, by digest, hardened, on Docker.

    Options: ``spawner.docker.traits.LockstepDockerTraits`` (``c.LockstepDockerSpawner.*``).
    """

    @default("cmd")
    def _lockstep_cmd(self):
        return [f"{ENV_PREFIX}/bin/jupyterhub-singleuser"]

    @default("remove")
    def _lockstep_remove(self):
        return True

    @default("use_internal_ip")
    def _lockstep_internal_ip(self):
        return True

    @default("object_name")
    def _lockstep_object_name(self):
        return self._object_name_default()

    @default("prefix")
    def _lockstep_prefix(self):
        return "lockstep"

    @default("apply_user_options")
    def _lockstep_apply_user_options(self):
        return check_user_options

    def _object_name_default(self):
        name = f"{self.prefix}-{safe_slug(self.user.name)}"
        return f"{name}--{safe_slug(self.name)}" if self.name else name

    @default("options_form")
    def _lockstep_options_form(self):
        return _options_form

    @default("options_from_form")
    def _lockstep_options_from_form(self):
        return options_from_form

    _workers: ThreadPoolExecutor | None = None
    _info_cache: tuple[float, dict] = (0.0, {})
    _start_gate: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
    _registry_notice = ""

    @property
    def executor(self):
        cls = LockstepDockerSpawner
        if cls._workers is None:
            cls._workers = ThreadPoolExecutor(self.docker_workers, thread_name_prefix="lockstep")
        return cls._workers

    @property
    def client(self):
        """DockerSpawner's one client, minus requests' per-call environment reading on a
        local socket (``engine.local_only``)."""
        client = DockerSpawner.client.fget(self)
        return dockerops.local_only(client) if getattr(client, "trust_env", False) else client

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        check_site_config(self.config)  # and at hub start: check_config(c), last in the config
        self.settings = Lockstep(config=self.config)
        self._fixed_hub_url = self.hub_connect_url
        self._site_network = self.network_name  # lockstep never changes the trait itself
        self._launch: LaunchState | None = None  # what runs: persisted by get_state
        self._events: list[dict] = []
        self._start_done = True
        self._began = time.monotonic()

    # ---- state ---------------------------------------------------------------------
    def get_state(self):
        """DockerSpawner's state plus ``{"lockstep": LaunchState.to_dict()}`` (the shape both
        spawners persist; the digest is part of ``image``, read back by ``from_state``)."""
        state = super().get_state()
        if self._launch is not None:
            state["lockstep"] = self._launch.to_dict()
        return state

    def load_state(self, state):
        super().load_state(state)
        self._launch = from_state(state)

    def clear_state(self):
        super().clear_state()
        self._launch = None

    # ---- choices -------------------------------------------------------------------
    def load_catalog(self) -> Catalog:
        """Every project; an invalid project.yaml is logged, kept for admins, skipped."""
        catalog = load_catalog(self.settings.environments_dir)
        log_invalid(catalog, self.log)
        return catalog

    def load_projects(self) -> dict[str, Project]:
        """Every valid project (``load_catalog().projects``)."""
        return self.load_catalog().projects

    async def choices(self, catalog: Catalog | None = None,
                      ) -> tuple[list[Project], dict[str, dict[str, ImageRef]]]:
        """The projects this user may launch and, for each, the stages that have a digest."""
        catalog = catalog or await asyncio.to_thread(self.load_catalog)
        return await choice.launchable(catalog.projects,
                                       access.Requester.from_hub_user(self.user),
                                       choice.settings_source(self.settings), self.log)

    async def options_html(self) -> str:
        """The spawn form: usable projects x stages with a digest, plus the GPU box; admins
        also see each skipped project with its error."""
        catalog = await asyncio.to_thread(self.load_catalog)
        mine, available = await self.choices(catalog)
        facts = await projectfacts.facts_for(available, self.settings.environments_dir)
        return render_form(mine, access.Requester.from_hub_user(self.user), available,
                           self.settings.stages, invalid=catalog.invalid, facts=facts)

    def _refuse(self, message: str, status: int = 400, reason: str = "options") -> NoReturn:
        error = SpawnException(message, reason=reason, status_code=status)
        error.jupyterhub_message = message  # the spawn page shows the message, no repr
        raise error

    async def resolve_request(self) -> tuple[Project, str, ImageRef, bool | None]:
        """(project, stage, image, gpu) for ``user_options`` (``spawner.launch.choice``);
        400/403/404/409 if refused, before anything is created."""
        who = access.Requester.from_hub_user(self.user)
        try:
            chosen = await choice.choose(request_for(self, self.user_options), who,
                                         await asyncio.to_thread(self.load_projects),
                                         self.settings.stages,
                                         choice.settings_source(self.settings))
        except (access.LaunchRefused, OptionsError) as exc:
            self._refuse(str(exc), exc.status, "forbidden" if exc.status == 403 else "options")
        except LockstepError as exc:
            self._refuse(str(exc))
        self._registry_notice = chosen.notice  # registry down: the last known digest
        if chosen.notice:
            self._emit(chosen.notice, 3)
        return chosen.project, chosen.stage, chosen.image, chosen.request.gpu

    # ---- engine --------------------------------------------------------------------
    async def engine_info(self) -> dict:
        cls = LockstepDockerSpawner
        stamp, info = cls._info_cache
        if not info or time.monotonic() - stamp > self.info_ttl:
            info = await self.docker("info")
            cls._info_cache = (time.monotonic(), info)
        return info

    async def start(self):
        self._events, self._start_done, self._began = [], False, time.monotonic()
        try:
            return await self._start()
        finally:
            self._start_ended()

    async def _check_host(self, project: Project, gpu: bool | None):
        """(gpu wanted, gpu mode, runtime, data sources), or a 400 before anything exists."""
        info = await self.engine_info()
        want_gpu = project.gpu is not None if gpu is None else gpu
        request = _gpu_request(project.gpu) if want_gpu and project.gpu else None
        site = DockerSite.from_traits(self)
        groups = access.Requester.from_hub_user(self.user).groups

        def checks():  # nvidia-smi and the data sources' file system: off the Hub's loop
            runtime, gpu_mode = check_host(request, project=project, info=info, site=site)
            return runtime, gpu_mode, site_data_sources(project, self.settings,
                                                         user_groups=groups)

        try:
            runtime, gpu_mode, sources = await asyncio.to_thread(checks)
        except LockstepError as exc:
            self._refuse(str(exc), 400, "host")
        return want_gpu, gpu_mode, runtime, sources

    def _labels(self, session_id: str) -> tuple[tuple[str, str], ...]:
        site = {k: str(v) for k, v in self.extra_labels.items() if not is_lockstep_key(k)}
        return tuple(sorted({**site, SESSION: session_id, SERVER_NAME: self.name or ""}.items()))

    async def _start(self):
        project, stage, image, gpu = await self.resolve_request()
        self._emit(f"{project.name} at {stage}: {image.reference}", 5)
        want_gpu, _, _, sources = await self._check_host(project, gpu)
        options = LaunchOptions(hardening=Hardening(**self.hardening),
                                tmpfs_size=self.tmpfs_size)
        self.image = image.reference
        inherited = await self._inherited()
        image_labels = await self._ensure_image(image.reference)  # Lab or not: its label
        launch = functools.partial(
            build_launch_spec, project=project, image=image, user=self.user.name, stage=stage,
            data_sources=sources, options=options, gpu=want_gpu,
            command=tuple(self.cmd + self.get_args()))
        ready = await self._prepare(project, for_server(launch(env={}), self.name or ""))
        # the Hub URL (the network's gateway) is known now: the spec with the Hub's env
        env = await landing.server_env(self.get_env(), project, image,  # Lab on the workspace
                                       self.settings.environments_dir, image_labels)
        spec = for_server(launch(env=env), self.name or "")
        network = spec.network
        await self._remove_leftover()
        session_id = sessions.new_session_id()
        try:
            body = render_container(spec, DockerOptions(
                port=self.port, gpu_mode=ready.gpu_mode, runtime=ready.runtime,
                recursive_read_only=ready.recursive_read_only,
                extra_labels=self._labels(session_id),
                volume_nocopy=self.volume_ownership == "chown", inherited=inherited))
        except ValueError as exc:
            self._refuse(str(exc), 500, "config")
        launch_state = LaunchState(
            project=project.name, stage=stage, image=image.reference,
            lock_hash=image.lock_hash, session=session_id, engine={"network": network})
        ip = await self._boot(body, launch_state, inherited.network)
        if self.post_start_cmd:  # DockerSpawner's, as the server's own (non-root) user
            await self.post_start_exec()
        return ip, self.port

    async def _boot(self, body: dict, launch: LaunchState, site_network: str = "") -> str:
        """Create and start the container in a start slot, record the session (``launch``
        becomes the persisted state), wait until the server answers; its IP."""
        slot = await self._start_slot()
        try:
            self._emit("Creating container", 80)
            began = time.monotonic()
            created = await self.docker("create_container_from_config", body, self.object_name)
            self.object_id = created["Id"]
            if site_network:  # network_name, allowed by allow_weakening = ["network"]
                await self.docker("connect_container_to_network", self.object_id, site_network)
            await self.docker("start", self.object_id)
            ip = await self._container_ip(site_network or launch.engine["network"])
            self._launch = launch
            await self._record_start()
            answered = await self._wait_ready(ip, slot)
        finally:
            slot.release()
        took = time.monotonic() - began
        if answered:
            self._emit(f"Server up {took:.1f}s after creating its container", 95)
        elif answered is None:
            self._emit("Container started", 95)
        else:
            self._emit(f"Server not answering {took:.1f}s after creating its container; "
                       f"waiting up to {self.http_timeout:g}s more", 90)
        return ip

    async def _start_slot(self) -> _Slot:
        """One of ``start_slots``, waited for (with a line on the spawn page) if all are taken."""
        slots = self.start_slots
        if slots == 0:
            slots = int((await self.engine_info()).get("NCPU") or 0) or os.cpu_count() or 1
        if slots < 0:
            return _Slot(None)
        cls, loop = LockstepDockerSpawner, asyncio.get_running_loop()
        if cls._start_gate is None or cls._start_gate[0] is not loop:
            cls._start_gate = (loop, asyncio.Semaphore(slots))
        gate = cls._start_gate[1]
        if gate.locked():
            self._emit("Waiting for a start slot: other servers are booting", 78)
        await gate.acquire()
        return _Slot(gate)

    async def _prepare(self, project: Project, spec) -> Prepared:
        """The engine made ready for ``spec`` by ``spawner.docker.prepare``, exactly as for
        jobs, services and gates (the image is ``_ensure_image``'s, by ``pull_policy``);
        refused before the container exists."""
        loop = asyncio.get_running_loop()

        def report(message: str, fraction: float) -> None:
            loop.call_soon_threadsafe(self._emit, message, 75)

        try:
            ready = await asyncio.to_thread(
                prepare, self.client, spec, project=project, site=DockerSite.from_traits(self),
                info=await self.engine_info(), host_ports=[self.hub.port], pull=False,
                notebooks_dir=self.settings.notebooks_dir, report=report)
        except PrepareError as exc:
            self._refuse(str(exc), exc.status, exc.step)
        if self._fixed_hub_url is None:
            gateway = gateway_of(ready.network)
            self.hub_connect_url = f"{self.hub.proto}://{gateway}:{self.hub.port}"
        return ready

    async def _container_ip(self, network: str) -> str:
        info = await self.docker("inspect_container", self.object_id)
        return info["NetworkSettings"]["Networks"][network]["IPAddress"]

    # ---- provenance ----------------------------------------------------------------
    def _session(self, launch: LaunchState) -> sessions.Session:
        """The session log's record of ``launch`` (digest from its image reference)."""
        return sessions.Session(
            id=launch.session, user=self.user.name, project=launch.project,
            stage=launch.stage, digest=launch.digest, image=launch.image,
            lock_hash=launch.lock_hash, server_name=self.name or "",
            container_id=self.object_id or "", start=launch.started)

    async def _record_start(self) -> None:
        self._launch = replace(self._launch, started=sessions.now_iso())
        await asyncio.to_thread(sessions.append_event, self.settings.data_path(sessions.FILENAME),
                                sessions.start_event(self._session(self._launch)))

    async def stop(self, now=False):
        """Remove the container, then close its session in the log (from the persisted
        state, so a server started before a hub restart is closed too)."""
        recorded = self._launch
        if not self.object_id and await self.get_object() is None:
            self.clear_state()
        else:
            await super().stop(now=now)
        if recorded is not None and recorded.session:
            await asyncio.to_thread(sessions.append_event,
                                    self.settings.data_path(sessions.FILENAME),
                                    sessions.stop_event(self._session(recorded),
                                                        sessions.now_iso()))


def _gpu_request(gpu) -> GpuRequest:
    return GpuRequest(gpu.count, gpu.vendor, gpu.type, gpu.cuda)


async def _options_form(spawner: LockstepDockerSpawner) -> str:
    return await spawner.options_html()

