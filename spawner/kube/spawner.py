"""``LockstepKubeSpawner``: KubeSpawner that launches a project's locked image by digest.

Glue only. The decision who may launch what is ``access`` (shared with the Docker
spawner), the image comes from the stage pointer (``stages.resolve_stage``), the launch
is ``launch.build_launch_spec`` and the pod is ``render_kube.render_pod``; this class
reads config, calls them, creates the claims and the pod through KubeSpawner's own
machinery (retries, reflectors, progress events) and persists project, stage, digest and
lock hash in ``get_state()`` so a hub restart never loses what a running server runs.

Entry point ``lockstep-kube``::

    c.JupyterHub.spawner_class = "lockstep-kube"
    c.LockstepKubeSpawner.data_volumes = {"sales": {"pvc": "sales-data"}}

It must not build manifests itself (``render_kube`` does) nor decide access (``access``).
"""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any

from jupyterhub.spawner import SpawnException
from jupyterhub.utils import exponential_backoff
from kubespawner import KubeSpawner
from traitlets import Dict, Enum, Float, Instance, Unicode, default

from spawner import sessions
from spawner.kube import render as render_kube
from spawner.launch import access, choice
from spawner.launch.options import OptionsError, check_user_options, options_from_form, render_form
from spawner.launch.spec import ImageRef, LaunchSpec, build_launch_spec
from spawner.project import Project, list_projects
from spawner.settings import Lockstep

STATE_KEYS = ("lockstep_project", "lockstep_stage", "lockstep_image", "lockstep_lock_hash",
              "lockstep_session")


class _Json:
    """What ``ApiClient.deserialize`` reads: an object with ``.data`` holding JSON text."""

    def __init__(self, obj: Any) -> None:
        self.data = json.dumps(obj)


def refusal_error(refusal: access.LaunchRefused | OptionsError) -> SpawnException:
    """The policy failure JupyterHub shows to the user, with the refusal's HTTP status."""
    error = SpawnException(str(refusal), status_code=refusal.status,
                           reason="forbidden" if refusal.status == 403 else "options")
    error.jupyterhub_message = str(refusal)  # type: ignore[attr-defined]
    return error


class LockstepKubeSpawner(KubeSpawner):
    """Spawn a lockstep project's image, pinned by digest, as a hardened pod."""

    lockstep = Instance(Lockstep, help="The site's ``c.Lockstep`` settings (read from config).")

    @default("lockstep")
    def _default_lockstep(self) -> Lockstep:
        return Lockstep(config=self.config)

    data_volumes = Dict(
        help="""
        The Kubernetes volume behind each project data mount, by ``"<project>/<mount>"``
        or just ``"<mount>"`` (the first wins).

        Each value is exactly one of ``{"pvc": CLAIM}``, ``{"nfs": {"server": HOST,
        "path": PATH}}`` or ``{"hostPath": PATH}`` (single-node clusters only). The volume
        and the mount are both read-only. A project whose data mount is not mapped is
        refused with this option named.

            c.LockstepKubeSpawner.data_volumes = {
                "forecast/sales": {"pvc": "sales-data"},
                "imagenet": {"nfs": {"server": "nfs.internal", "path": "/exports/imagenet"}},
            }
        """,
    ).tag(config=True)

    workspace_claim_template = Unicode(
        "lockstep-ws-{project}",
        help="""
        Name of each project's shared workspace claim (ReadWriteMany), ``{project}`` filled in.

        The spawner creates it (``workspace.size`` from project.yaml) when it is missing.

            c.LockstepKubeSpawner.workspace_claim_template = "ws-{project}"
        """,
    ).tag(config=True)

    workspace_storage_class = Unicode(
        "",
        help="""
        StorageClass for project workspaces; it must offer ReadWriteMany (NFS, CephFS,
        EFS, Filestore...). Empty means the cluster default.

            c.LockstepKubeSpawner.workspace_storage_class = "nfs-client"
        """,
    ).tag(config=True)

    home_storage = Enum(
        ["pvc", "emptyDir"],
        "pvc",
        help="""
        Where ``/home/jovyan`` lives: a per-user, per-project claim (``pvc``, kept across
        servers) or an ``emptyDir`` (gone when the server stops).

            c.LockstepKubeSpawner.home_storage = "emptyDir"
        """,
    ).tag(config=True)

    home_size = Unicode(
        "10Gi",
        help="""
        Size of each home claim when ``home_storage`` is ``pvc``.

            c.LockstepKubeSpawner.home_size = "20Gi"
        """,
    ).tag(config=True)

    home_storage_class = Unicode(
        "",
        help="""
        StorageClass of home claims (ReadWriteOnce is enough). Empty: the cluster default.

            c.LockstepKubeSpawner.home_storage_class = "fast-ssd"
        """,
    ).tag(config=True)

    tmp_medium = Enum(
        ["", "Memory"],
        "",
        help="""
        ``emptyDir`` medium of ``/tmp``: node disk (``""``) or RAM (``"Memory"``, counted in
        the pod's memory limit).

            c.LockstepKubeSpawner.tmp_medium = "Memory"
        """,
    ).tag(config=True)

    gpu_placement = Dict(
        help="""
        Node selector and tolerations for pods that ask for GPUs, by GPU ``type`` from
        project.yaml, then by vendor (``nvidia``/``amd``), then ``""`` for any GPU.

        A toleration for the vendor's resource taint (``nvidia.com/gpu`` or
        ``amd.com/gpu``, effect NoSchedule) is always added.

            c.LockstepKubeSpawner.gpu_placement = {
                "a100": {"node_selector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
                         "tolerations": [{"key": "dedicated", "operator": "Equal",
                                          "value": "gpu", "effect": "NoSchedule"}]},
            }
        """,
    ).tag(config=True)

    runtime_classes = Dict(
        {"gvisor": "gvisor", "kata": "kata"},
        help="""
        RuntimeClass name for each ``isolation`` of project.yaml other than ``runc``.

        The RuntimeClass must exist in the cluster (see docs/kubernetes.md).

            c.LockstepKubeSpawner.runtime_classes = {"gvisor": "gvisor", "kata": "kata-qemu"}
        """,
    ).tag(config=True)

    cpu_request_fraction = Float(
        1.0,
        help="""
        CPU request as a fraction of the project's CPU limit (1.0: request what may be used).

            c.LockstepKubeSpawner.cpu_request_fraction = 0.25
        """,
    ).tag(config=True)

    memory_request_fraction = Float(
        1.0,
        help="""
        Memory request as a fraction of the project's memory limit.

            c.LockstepKubeSpawner.memory_request_fraction = 0.5
        """,
    ).tag(config=True)

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        return ["jupyterhub-singleuser"]

    # -- options form ------------------------------------------------------------------

    @default("options_form")
    def _options_form_default(self):
        return self._lockstep_form

    @default("options_from_form")
    def _options_from_form_default(self):
        return options_from_form

    @default("apply_user_options")
    def _apply_user_options_default(self):
        return check_user_options

    async def _lockstep_form(self, spawner: LockstepKubeSpawner) -> str:
        who = access.Requester.from_hub_user(self.user)
        source = choice.ImageSource(self.stage_images, self.pinned_image,
                                    self._source.find_session)
        mine, ready = await choice.launchable(await self.load_projects(), who, source, self.log)
        return render_form(mine, who, ready, self.lockstep.stages)

    # -- seams: projects and stage pointers (a test may subclass these) ----------------

    async def load_projects(self) -> dict[str, Project]:
        """Every project under ``c.Lockstep.environments_dir``, by name (read each start)."""
        found = await asyncio.to_thread(list_projects, self.lockstep.environments_dir)
        return {p.name: p for p in found}

    async def stage_images(self, project: Project) -> dict[str, ImageRef]:
        """Stage -> image for every stage of ``project`` that has a pointer, in stage order."""
        return dict(await self._source.stage_images(project))

    async def pinned_image(self, project: Project, digest: str, stage: str) -> ImageRef:
        """``user_options["digest"]``: that digest in ``stage``'s repository (or the first's)."""
        return await self._source.pinned_image(project, digest, stage)

    @property
    def _source(self) -> choice.ImageSource:
        return choice.settings_source(self.lockstep)

    # -- the launch ----------------------------------------------------------------------

    _spec: LaunchSpec | None = None
    _session: sessions.Session | None = None

    async def _choose(self, who: access.Requester) -> choice.Choice:
        """What to run for ``user_options``: ``spawner.launch.choice``, as on Docker."""
        source = choice.ImageSource(self.stage_images, self.pinned_image,
                                    self._source.find_session)
        return await choice.choose(self.user_options, who, await self.load_projects(),
                                   self.lockstep.stages, source)

    async def prepare_launch(self) -> LaunchSpec:
        """Check access, resolve what to run to a digest, and build the launch spec."""
        who = access.Requester.from_hub_user(self.user)
        try:
            chosen = await self._choose(who)
        except (access.LaunchRefused, OptionsError) as refusal:
            self.log.warning("lockstep: refused %s for %s: %s", self.user.name,
                             self.user_options, refusal)
            raise refusal_error(refusal) from None
        project = chosen.project
        self.image = chosen.image.reference
        self._spec = build_launch_spec(
            project=project, image=chosen.image, user=self.user.name, stage=chosen.stage,
            data_sources={m.name: self._describe_data(project, m.name) for m in project.data},
            env=self.get_env(), command=tuple(self.cmd or ()) + tuple(self.get_args()),
            gpu=chosen.request.gpu,
        )
        return self._spec

    def _describe_data(self, project: Project, mount: str) -> str:
        source = (self.data_volumes.get(f"{project.name}/{mount}")
                  or self.data_volumes.get(mount) or {})
        return ",".join(f"{k}={v}" for k, v in sorted(source.items())) or "unmapped"

    def kube_options(self) -> render_kube.KubeOptions:
        """The site's ``render_kube.KubeOptions`` from this spawner's traits."""
        secrets = tuple(s["name"] if isinstance(s, dict) else str(s)
                        for s in (self.image_pull_secrets or []))
        placement = {
            key: render_kube.GpuPlacement(
                node_selector=dict(value.get("node_selector", {})),
                tolerations=tuple(dict(t) for t in value.get("tolerations", ())))
            for key, value in self.gpu_placement.items()
        }
        return render_kube.KubeOptions(
            data_volumes=dict(self.data_volumes),
            workspace_claim_template=self.workspace_claim_template,
            workspace_storage_class=self.workspace_storage_class,
            home_storage=self.home_storage, home_size=self.home_size,
            storage_class=self.home_storage_class, tmp_medium=self.tmp_medium,
            gpu_placement=placement, runtime_classes=dict(self.runtime_classes),
            image_pull_secrets=secrets, image_pull_policy=self.image_pull_policy,
            cpu_request_fraction=self.cpu_request_fraction,
            memory_request_fraction=self.memory_request_fraction,
        )

    def pod_dict(self, spec: LaunchSpec) -> dict[str, Any]:
        """``render_kube.render_pod`` with this server's name, port and KubeSpawner labels."""
        try:
            return render_kube.render_pod(
                spec, self.kube_options(), name=self.pod_name, port=self.port,
                extra_labels=self._build_pod_labels(self._expand_all(self.extra_labels)),
                extra_annotations=self._build_common_annotations(
                    self._expand_all(self.extra_annotations)),
            )
        except render_kube.KubeRenderError as exc:  # a site misconfiguration, named
            self.log.error("lockstep: cannot render the pod: %s", exc)
            raise SpawnException(str(exc), reason="config", status_code=500) from None

    def _model(self, obj: dict[str, Any], klass: str):
        return self.api.api_client.deserialize(_Json(obj), klass)

    async def get_pod_manifest(self):
        """The pod KubeSpawner creates: ``render_kube`` output as a ``V1Pod``."""
        spec = self._spec or await self.prepare_launch()
        return self._model(self.pod_dict(spec), "V1Pod")

    async def _ensure_claims(self, spec: LaunchSpec) -> None:
        for claim in render_kube.render_claims(spec, self.kube_options()):
            pvc = self._model(claim, "V1PersistentVolumeClaim")
            await exponential_backoff(
                partial(self._make_create_pvc_request, pvc, self.k8s_api_request_timeout),
                f"Could not create PVC {pvc.metadata.name}",
                timeout=self.k8s_api_request_retry_timeout,
            )

    async def _start(self):
        await self.load_user_options()
        spec = await self.prepare_launch()
        await self._ensure_claims(spec)
        url = await super()._start()
        self._session = sessions.Session(
            id=sessions.new_session_id(), user=self.user.name, project=spec.project,
            stage=spec.stage, digest=spec.image.digest, image=spec.image.reference,
            lock_hash=spec.image.lock_hash, server_name=self.name or "",
            container_id=f"{self.namespace}/{self.pod_name}", start=sessions.now_iso())
        await self._append(sessions.start_event(self._session))
        return url

    async def stop(self, now: bool = False) -> None:
        await super().stop(now=now)
        if self._session is not None:
            await self._append(sessions.stop_event(self._session, sessions.now_iso()))
            self._session = None

    async def _append(self, event: dict[str, Any]) -> None:
        path = self.lockstep.data_path(sessions.FILENAME)
        try:
            await asyncio.to_thread(sessions.append_event, path, event)
        except OSError as exc:  # the log must never block a server
            self.log.error("lockstep: cannot append to the session log %s: %s", path, exc)

    # -- state -------------------------------------------------------------------------

    _restored: dict[str, str] = {}

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self._spec is not None:
            state.update(lockstep_project=self._spec.project, lockstep_stage=self._spec.stage,
                         lockstep_image=self._spec.image.reference,
                         lockstep_lock_hash=self._spec.image.lock_hash)
            if self._session is not None:
                state["lockstep_session"] = self._session.id
        else:
            state.update(self._restored)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self._restored = {k: str(state[k]) for k in STATE_KEYS if state.get(k)}
        if "lockstep_image" in self._restored:
            self.image = self._restored["lockstep_image"]
        if "lockstep_session" in self._restored:
            r = self._restored
            self._session = sessions.Session(
                id=r["lockstep_session"], user=self.user.name,
                project=r.get("lockstep_project", ""), stage=r.get("lockstep_stage", ""),
                digest=r.get("lockstep_image", "").partition("@")[2],
                image=r.get("lockstep_image", ""), lock_hash=r.get("lockstep_lock_hash", ""))

    def clear_state(self) -> None:
        super().clear_state()
        self._spec = None
        self._session = None
        self._restored = {}
