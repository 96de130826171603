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
the traits below (``c.LockstepDockerSpawner.*``).
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn

import httpx
from dockerspawner import DockerSpawner
from jupyterhub.spawner import SpawnException
from traitlets import default

from spawner import sessions
from spawner.docker import engine as dockerops
from spawner.docker.firewall import gateway_of, sync_firewall
from spawner.docker.gpu import check_gpu
from spawner.docker.render import DockerOptions, render_container, volume_labels
from spawner.docker.runtimes import engine_runtime
from spawner.docker.traits import LockstepDockerTraits
from spawner.errors import LockstepError
from spawner.launch import access, choice
from spawner.launch.datamounts import resolve_data_sources
from spawner.launch.options import OptionsError, check_user_options, options_from_form, render_form
from spawner.launch.spec import (
    GpuRequest,
    Hardening,
    ImageRef,
    LaunchOptions,
    build_launch_spec,
    network_name,
    safe_slug,
)
from spawner.project import Project, ProjectError, load_project
from spawner.settings import ENV_PREFIX, Lockstep


class LockstepDockerSpawner(DockerSpawner, LockstepDockerTraits):
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
    _firewall_lock: asyncio.Lock | None = None
    _start_gate: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    @property
    def executor(self):
        cls = LockstepDockerSpawner
        if cls._workers is None:
            cls._workers = ThreadPoolExecutor(self.docker_workers, thread_name_prefix="lockstep")
        return cls._workers

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.settings = Lockstep(config=self.config)
        self._fixed_hub_url = self.hub_connect_url
        self._lockstep: dict = {}
        self._events: list[dict] = []
        self._start_done = True
        self._began = time.monotonic()

    # ---- state ---------------------------------------------------------------------
    def get_state(self):
        state = super().get_state()
        if self._lockstep:
            state["lockstep"] = dict(self._lockstep)
        return state

    def load_state(self, state):
        super().load_state(state)
        self._lockstep = dict(state.get("lockstep") or {})
        if self._lockstep.get("network"):
            self.network_name = self._lockstep["network"]

    def clear_state(self):
        super().clear_state()
        self._lockstep = {}

    # ---- choices -------------------------------------------------------------------
    def load_projects(self) -> dict[str, Project]:
        """Every valid project; an invalid project.yaml is logged and skipped."""
        found = {}
        root = Path(self.settings.environments_dir).expanduser()
        for path in sorted(root.glob("*/project.yaml")):
            try:
                project = load_project(path.parent)
            except ProjectError as exc:
                self.log.error("lockstep: skipping %s", exc)
                continue
            found[project.name] = project
        return found

    async def choices(self) -> tuple[list[Project], dict[str, dict[str, ImageRef]]]:
        """The projects this user may launch and, for each, the stages that have a digest."""
        return await choice.launchable(await asyncio.to_thread(self.load_projects),
                                       access.Requester.from_hub_user(self.user),
                                       choice.settings_source(self.settings), self.log)

    async def options_html(self) -> str:
        """The spawn form: usable projects x stages with a digest, plus the GPU box."""
        mine, available = await self.choices()
        return render_form(mine, access.Requester.from_hub_user(self.user), available,
                           self.settings.stages)

    def _refuse(self, message: str, status: int = 400, reason: str = "options") -> NoReturn:
        error = SpawnException(message, reason=reason, status_code=status)
        error.jupyterhub_message = message  # the spawn page shows the message, no repr
        raise error

    async def resolve_request(self) -> tuple[Project, str, ImageRef, bool | None]:
        """(project, stage, image, gpu) for ``user_options`` (``spawner.launch.choice``);
        400/403/404/409 if refused, before anything is created."""
        who = access.Requester.from_hub_user(self.user)
        try:
            chosen = await choice.choose(self.user_options, who,
                                         await asyncio.to_thread(self.load_projects),
                                         self.settings.stages,
                                         choice.settings_source(self.settings))
        except (access.LaunchRefused, OptionsError) as exc:
            self._refuse(str(exc), exc.status, "forbidden" if exc.status == 403 else "options")
        except LockstepError as exc:
            self._refuse(str(exc))
        return chosen.project, chosen.stage, chosen.image, chosen.request.gpu

    # ---- engine --------------------------------------------------------------------
    async def engine_info(self) -> dict:
        cls = LockstepDockerSpawner
        stamp, info = cls._info_cache
        if not info or time.monotonic() - stamp > self.info_ttl:
            info = await self.docker("info")
            cls._info_cache = (time.monotonic(), info)
        return info

    def _emit(self, message: str, progress: int | None = None) -> None:
        event: dict = {"message": message}
        if progress is not None:
            event["progress"] = progress
        self._events.append(event)
        elapsed = time.monotonic() - self._began
        self.log.info("lockstep %s: +%.2fs %s", self._log_name, elapsed, message)

    async def progress(self):
        seen = 0
        while True:
            while seen < len(self._events):
                yield self._events[seen]
                seen += 1
            if self._start_done:
                return
            await asyncio.sleep(0.1)

    async def start(self):
        self._events, self._start_done, self._began = [], False, time.monotonic()
        try:
            return await self._start()
        finally:
            self._start_done = True

    async def _check_host(self, project: Project, gpu: bool | None):
        """(gpu wanted, gpu mode, runtime, data sources), or a 400 before anything exists."""
        info = await self.engine_info()
        want_gpu = project.gpu is not None if gpu is None else gpu
        request = _gpu_request(project.gpu) if want_gpu and project.gpu else None
        try:
            gpu_mode = check_gpu(request, self.gpu_mode, project=project.name, info=info)
            runtime = engine_runtime(project.isolation, project=project.name, info=info,
                                     names=self.runtime_names)
            sources = resolve_data_sources(project, self.settings.data_roots)
        except LockstepError as exc:
            self._refuse(str(exc), 400, "host")
        return want_gpu, gpu_mode, runtime, sources

    def _labels(self, session_id: str) -> tuple[tuple[str, str], ...]:
        site = {k: str(v) for k, v in self.extra_labels.items()
                if not k.startswith("org.lockstep.")}
        return tuple(sorted({**site, "org.lockstep.session": session_id,
                             "org.lockstep.server-name": self.name or ""}.items()))

    async def _start(self):
        project, stage, image, gpu = await self.resolve_request()
        self._emit(f"{project.name} at {stage}: {image.reference}", 5)
        want_gpu, gpu_mode, runtime, sources = await self._check_host(project, gpu)
        options = LaunchOptions(hardening=Hardening(**self.hardening),
                                tmpfs_size=self.tmpfs_size)
        network = await self._prepare_network(project, options)
        if not await asyncio.to_thread(dockerops.has_image, self.client, image.reference):
            await self._pull(image.reference)
        self.image = image.reference
        spec = build_launch_spec(project=project, image=image, user=self.user.name, stage=stage,
                                 data_sources=sources, options=options, env=self.get_env(),
                                 gpu=want_gpu, command=tuple(self.cmd + self.get_args()))
        await self._prepare_volumes(spec)
        if await asyncio.to_thread(dockerops.remove_container, self.client, self.object_name):
            self.log.warning("lockstep: removed leftover container %s", self.object_name)
        session_id = sessions.new_session_id()
        body = render_container(spec, DockerOptions(
            port=self.port, gpu_mode=gpu_mode, runtime=runtime,
            extra_labels=self._labels(session_id),
            volume_nocopy=self.volume_ownership == "chown"))
        state = {"project": project.name, "stage": stage, "image": image.reference,
                 "digest": image.digest, "lock_hash": image.lock_hash, "network": network,
                 "session": session_id, "object_name": self.object_name}
        return await self._boot(body, state), self.port

    async def _boot(self, body: dict, state: dict) -> str:
        """Create and start the container in a start slot, record the session (``state``
        becomes the persisted state), wait until the server answers; its IP."""
        slot = await self._start_slot()
        try:
            self._emit("Creating container", 80)
            began = time.monotonic()
            created = await self.docker("create_container_from_config", body, self.object_name)
            self.object_id = created["Id"]
            await self.docker("start", self.object_id)
            ip = await self._container_ip(state["network"])
            self._lockstep = state
            await self._record_start(state["session"])
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

    async def _prepare_network(self, project: Project, options: LaunchOptions) -> str:
        name = network_name(project.name, options)
        try:
            net = await asyncio.to_thread(dockerops.ensure_network, self.client, project.name,
                                          name, internal=self.network_internal)
            if self.firewall:
                cls = LockstepDockerSpawner
                cls._firewall_lock = cls._firewall_lock or asyncio.Lock()
                async with cls._firewall_lock:  # list + write as one step: no lost bridge
                    bridges = await asyncio.to_thread(dockerops.lockstep_bridges, self.client)
                    await asyncio.to_thread(sync_firewall, bridges=bridges,
                                            host_ports=[self.hub.port, *self.allowed_host_ports])
        except LockstepError as exc:
            self._refuse(str(exc), 500, "network")
        self.network_name = name
        if self._fixed_hub_url is None:
            gateway = gateway_of(net)
            self.hub_connect_url = f"{self.hub.proto}://{gateway}:{self.hub.port}"
        return name

    async def _pull(self, reference: str) -> None:
        self._emit(f"Pulling {reference}", 10)
        loop = asyncio.get_running_loop()

        def report(message: str, fraction: float) -> None:
            loop.call_soon_threadsafe(self._emit, message, 10 + int(60 * fraction))

        try:
            await asyncio.to_thread(dockerops.pull, self.client, reference, report)
        except (LockstepError, Exception) as exc:
            self._refuse(f"could not pull {reference}: {exc}", 500, "pull")
        self._emit("Image pulled", 70)

    async def _prepare_volumes(self, spec) -> None:
        for mount in spec.mounts:
            if mount.kind not in ("home", "workspace"):
                continue
            created = await asyncio.to_thread(
                dockerops.ensure_volume, self.client, mount.source, volume_labels(spec, mount),
                image=spec.image.reference, target=mount.target,
                chown=self.volume_ownership == "chown")
            if created:
                self._emit(f"Created volume {mount.source}", 75)

    async def _container_ip(self, network: str) -> str:
        info = await self.docker("inspect_container", self.object_id)
        return info["NetworkSettings"]["Networks"][network]["IPAddress"]

    async def _wait_ready(self, ip: str, slot: _Slot | None = None) -> bool | None:
        """Poll the server until it answers (True), exits (refused) or ``ready_timeout``
        passes (False; None when that is 0). ``slot`` is freed after ``start_slot_grace``."""
        if self.ready_timeout <= 0:
            return None
        url = f"http://{ip}:{self.port}{self.server.base_url if self.server else '/'}api"
        began = time.monotonic()
        deadline = began + self.ready_timeout
        checks = 0
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                try:
                    if (await client.get(url)).status_code < 500:
                        return True
                except httpx.HTTPError:
                    pass
                if slot is not None and time.monotonic() - began > self.start_slot_grace:
                    slot.release()
                checks += 1
                if checks % 20 == 0 and await self.poll() is not None:
                    logs = await asyncio.to_thread(dockerops.container_logs, self.client,
                                                   self.object_id)
                    self._refuse(f"the server exited while starting:\n{logs}", 500, "exited")
                await asyncio.sleep(0.05)
        return False

    # ---- provenance ----------------------------------------------------------------
    def _session(self, session_id: str) -> sessions.Session:
        lk = self._lockstep
        return sessions.Session(
            id=session_id, user=self.user.name, project=lk["project"], stage=lk["stage"],
            digest=lk["digest"], image=lk["image"], lock_hash=lk["lock_hash"],
            server_name=self.name or "", container_id=self.object_id, start=sessions.now_iso())

    async def _record_start(self, session_id: str) -> None:
        self._lockstep["started"] = sessions.now_iso()
        await asyncio.to_thread(sessions.append_event, self.settings.data_path(sessions.FILENAME),
                                sessions.start_event(self._session(session_id)))

    async def stop(self, now=False):
        recorded = dict(self._lockstep)
        if not self.object_id and await self.get_object() is None:
            self.clear_state()
        else:
            await super().stop(now=now)
        if recorded.get("session"):
            await asyncio.to_thread(sessions.append_event,
                                    self.settings.data_path(sessions.FILENAME), {
                                        "event": "stop", "id": recorded["session"],
                                        "user": self.user.name, "stop": sessions.now_iso()})


class _Slot:
    """A held start slot; ``release`` frees it once, however often it is called."""

    def __init__(self, gate: asyncio.Semaphore | None):
        self._gate = gate

    def release(self) -> None:
        if self._gate is not None:
            self._gate, gate = None, self._gate
            gate.release()


def _gpu_request(gpu) -> GpuRequest:
    return GpuRequest(gpu.count, gpu.vendor, gpu.type)


async def _options_form(spawner: LockstepDockerSpawner) -> str:
    return await spawner.options_html()
