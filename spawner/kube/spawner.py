"""``LockstepKubeSpawner``: KubeSpawner that launches a project's locked image by digest.

Glue only. The decision who may launch what is ``access`` (shared with the Docker
spawner), the image comes from the stage pointer (``stages.resolve_stage``), the launch
is ``launch.build_launch_spec`` and the pod is ``render_kube.render_pod`` with
KubeSpawner's own pod traits merged in (``podtraits``) or refused by name when they would
weaken hardening (``hardening``; at hub start through :func:`check_config`, again per spawn
for profiles and callables, and on the final pod after ``modify_pod_hook``). This class
reads config, calls them, creates the claims and the pod through KubeSpawner's own
machinery (retries, reflectors, progress events) and persists ``{"lockstep":
LaunchState}`` in ``get_state()`` (the Docker spawner's shape) so a hub restart never loses
what a running server runs. Projects come from ``launch.catalog``: an invalid
``project.yaml`` is logged, skipped and shown to admins on the form.

Entry point ``lockstep-kube``::

    c.JupyterHub.spawner_class = "lockstep-kube"
    c.LockstepKubeSpawner.data_volumes = {"sales": {"pvc": "sales-data"}}

It must not build manifests itself (``render_kube`` does) nor decide access (``access``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from functools import partial
from typing import Any

from jupyterhub.utils import exponential_backoff, maybe_future
from kubespawner import KubeSpawner
from traitlets import Instance, default

from spawner import sessions
from spawner.hubcompat import SpawnException
from spawner.kube import glue, hardening, parentaudit, podtraits, sitetraits
from spawner.kube import render as render_kube
from spawner.kube.traits import LockstepKubeTraits
from spawner.launch import access, choice, landing, projectfacts
from spawner.launch.catalog import Catalog, load_catalog, log_invalid
from spawner.launch.options import (
    KNOWN_KEYS,
    OptionsError,
    check_user_options,
    options_from_form,
    render_form,
)
from spawner.launch.spec import ImageRef, LaunchSpec, build_launch_spec
from spawner.launch.state import LaunchState, from_state
from spawner.project import Project
from spawner.settings import Lockstep

CALLABLE_TRAITS = ("uid", "gid", "fs_gid", "supplemental_gids", "container_security_context",
                   "pod_security_context")


def check_config(config) -> None:
    """Refuse, when the hub starts, KubeSpawner traits that would weaken the pod; call it
    last in ``jupyterhub_config.py``: ``check_config(c)`` (raises ``HardeningRefused``)."""
    sitetraits.check_config(config, LockstepKubeSpawner)


class LockstepKubeSpawner(LockstepKubeTraits, KubeSpawner):
    """Spawn a lockstep project's image, pinned by digest, as a hardened pod.

    KubeSpawner's pod traits (tolerations, affinities, ``extra_pod_config``, init
    containers, volumes...) are merged into the pod (``spawner.kube.podtraits``); one that
    would weaken hardening is refused by name (``spawner.kube.hardening``).
    """

    lockstep = Instance(Lockstep, help="The site's ``c.Lockstep`` settings (read from config).")

    @default("lockstep")
    def _default_lockstep(self) -> Lockstep:
        return Lockstep(config=self.config)

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        return ["jupyterhub-singleuser"]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        sitetraits.check({k: getattr(self, k) for k in sitetraits.CHECKED},
                         self.hardening_exceptions, self.log)

    # -- options form ------------------------------------------------------------------

    @default("options_form")
    def _options_form_default(self):
        return self._lockstep_form

    @default("options_from_form")
    def _options_from_form_default(self):
        return options_from_form

    @default("apply_user_options")
    def _apply_user_options_default(self):
        return lambda spawner, options: check_user_options(
            spawner, spawner.lockstep_options(options))

    def lockstep_options(self, user_options: Mapping | None) -> dict:
        """``user_options`` less KubeSpawner's profile choices (``profile`` and the chosen
        profile's options), which ``load_user_options`` applies."""
        options = dict(user_options or {})
        if self.profile_list and options.get("profile"):
            options = {k: v for k, v in options.items() if k in KNOWN_KEYS}
        return options

    async def _lockstep_form(self, spawner: LockstepKubeSpawner) -> str:
        who = access.Requester.from_hub_user(self.user)
        source = choice.ImageSource(self.stage_images, self.pinned_image,
                                    self._source.find_session)
        catalog = await self.load_catalog()
        mine, ready = await choice.launchable(catalog.projects, who, source, self.log)
        facts = await projectfacts.facts_for(ready, self.lockstep.environments_dir)
        return render_form(mine, who, ready, self.lockstep.stages, invalid=catalog.invalid,
                           facts=facts)

    # -- seams: projects and stage pointers (a test may subclass these) ----------------

    async def load_catalog(self) -> Catalog:
        """Every project under ``c.Lockstep.environments_dir`` (read each start); an
        invalid ``project.yaml`` is logged and left out, never failing the others."""
        catalog = await asyncio.to_thread(load_catalog, self.lockstep.environments_dir)
        log_invalid(catalog, self.log)
        return catalog

    async def load_projects(self) -> dict[str, Project]:
        """The valid projects, by name."""
        return (await self.load_catalog()).projects

    async def stage_images(self, project: Project) -> Mapping[str, ImageRef]:
        """Stage -> image for every stage of ``project`` that has a pointer, in stage order;
        its ``notice`` says when some are last known digests (the registry is down)."""
        return await self._source.stage_images(project)

    async def pinned_image(self, project: Project, digest: str, stage: str) -> ImageRef:
        """``user_options["digest"]``: that digest in ``stage``'s repository (or the first's)."""
        return await self._source.pinned_image(project, digest, stage)

    @property
    def _source(self) -> choice.ImageSource:
        return choice.settings_source(self.lockstep)

    # -- the launch ----------------------------------------------------------------------

    _spec: LaunchSpec | None = None
    _session: sessions.Session | None = None
    _registry_notice = ""

    async def progress(self):
        """KubeSpawner's pod events, led by the registry notice once the launch used a last
        known digest (the registry is down), as the Docker spawner's page shows it."""
        async for event in glue.with_notice(super().progress(), lambda: self._registry_notice):
            yield event

    async def _choose(self, who: access.Requester) -> choice.Choice:
        """What to run for ``user_options``: ``spawner.launch.choice``, as on Docker."""
        source = choice.ImageSource(self.stage_images, self.pinned_image,
                                    self._source.find_session)
        return await choice.choose(self.lockstep_options(self.user_options), who,
                                   await self.load_projects(), self.lockstep.stages, source)

    async def prepare_launch(self) -> LaunchSpec:
        """Check access, resolve what to run to a digest, and build the launch spec."""
        who = access.Requester.from_hub_user(self.user)
        try:
            chosen = await self._choose(who)
        except (access.LaunchRefused, OptionsError) as refusal:
            self.log.warning("lockstep: refused %s for %s: %s", self.user.name,
                             self.user_options, refusal)
            raise glue.refusal_error(refusal) from None
        project = chosen.project
        self.image = chosen.image.reference
        self._registry_notice = chosen.notice  # registry down: the last known digest
        env = await landing.server_env(self.get_env(), project, chosen.image,
                                       self.lockstep.environments_dir)  # Lab on the workspace
        self._env_refs = {k: v for k, v in env.items() if isinstance(v, Mapping)}
        self._spec = render_kube.for_server(build_launch_spec(
            project=project, image=chosen.image, user=self.user.name, stage=chosen.stage,
            data_sources={m.name: self._describe_data(project, m.name) for m in project.data},
            env={k: v for k, v in env.items() if k not in self._env_refs},
            command=tuple(self.cmd or ()) + tuple(self.get_args()), gpu=chosen.request.gpu,
        ), self.name or "")
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
            cuda_affinity=self.cuda_affinity,
            **{k: getattr(self, k) for k in sitetraits.LIMITS},
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
        return self.api.api_client.deserialize(glue.JsonText(obj), klass)

    # -- KubeSpawner's own pod traits: merged, or refused by name ------------------------

    _env_refs: dict[str, Any] = {}
    _pod_findings: frozenset = frozenset()
    _options_loaded = False

    def _check_traits(self, values: Mapping[str, Any]) -> None:
        try:
            sitetraits.check(values, self.hardening_exceptions, self.log)
        except hardening.HardeningRefused as exc:
            self.log.error("lockstep: %s", exc)
            raise SpawnException(str(exc), reason="config", status_code=500) from None

    async def _resolved_traits(self) -> dict[str, Any]:
        """Trait values for this spawn, callables (``uid``...) resolved, checked again (a
        profile's ``kubespawner_override`` may have changed them)."""
        values = {k: getattr(self, k) for k in sitetraits.CHECKED}
        for name in CALLABLE_TRAITS:
            if callable(values[name]):
                values[name] = await maybe_future(values[name](self))
        self._check_traits(values)
        return values

    async def pod_with_traits(self, spec: LaunchSpec) -> dict[str, Any]:
        """:meth:`pod_dict` with KubeSpawner's pod traits merged in (``podtraits``)."""
        traits = sitetraits.pod_traits(
            await self._resolved_traits(), env_refs=self._env_refs,
            ssl_secret=self.secret_name if self.internal_ssl else "",
            ssl_mount_path=self.secret_mount_path, expand=self._expand_all)
        try:
            return podtraits.apply_traits(self.pod_dict(spec), traits)
        except render_kube.KubeRenderError as exc:
            self.log.error("lockstep: cannot merge KubeSpawner traits: %s", exc)
            raise SpawnException(str(exc), reason="config", status_code=500) from None

    async def get_pod_manifest(self):
        """The pod KubeSpawner creates: ``render_kube`` output, traits merged, as a
        ``V1Pod``; ``modify_pod_hook`` then runs on it (KubeSpawner calls it)."""
        spec = self._spec or await self.prepare_launch()
        pod = await self.pod_with_traits(spec)
        self._pod_findings = frozenset(hardening.pod_findings(pod))
        return self._model(pod, "V1Pod")

    async def _make_create_pod_request(self, pod, request_timeout):
        """Refuse a pod that ``modify_pod_hook`` weakened, then create it as KubeSpawner does."""
        final = self.api.api_client.sanitize_for_serialization(pod)
        added = sorted(set(hardening.pod_findings(final)) - self._pod_findings)
        if added:
            what = "; ".join(f"{what} at {path}" for path, what in added)
            message = (f"c.KubeSpawner.modify_pod_hook weakened lockstep's pod hardening: "
                       f"{what}. Change the hook; it may add, not weaken.")
            self.log.error("lockstep: %s", message)
            raise SpawnException(message, reason="config", status_code=500)
        return await super()._make_create_pod_request(pod, request_timeout)

    async def load_user_options(self):
        """KubeSpawner's profile handling, once per start: ``super()._start()`` calls it
        again, which would re-apply a profile's overrides over the digest chosen here."""
        if self._options_loaded:
            return
        await super().load_user_options()
        self._options_loaded = True

    async def _ensure_claims(self, spec: LaunchSpec) -> None:
        for claim in render_kube.render_claims(spec, self.kube_options()):
            pvc = self._model(claim, "V1PersistentVolumeClaim")
            await exponential_backoff(
                partial(self._make_create_pvc_request, pvc, self.k8s_api_request_timeout),
                f"Could not create PVC {pvc.metadata.name}",
                timeout=self.k8s_api_request_retry_timeout,
            )

    async def _start(self):
        self._options_loaded = False
        await self.load_user_options()
        try:
            self._check_traits({k: getattr(self, k) for k in parentaudit.REFUSABLE})  # profiles
            spec = await self.prepare_launch()
            await self._ensure_claims(spec)
            url = await super()._start()
        finally:
            self._options_loaded = False
        self._session = sessions.Session(
            id=sessions.new_session_id(), user=self.user.name, project=spec.project,
            stage=spec.stage, digest=spec.image.digest, image=spec.image.reference,
            lock_hash=spec.image.lock_hash, server_name=self.name or "",
            container_id=f"{self.namespace}/{self.pod_name}", start=sessions.now_iso())
        await self._append(sessions.start_event(self._session))
        return url

    async def delete_forever(self) -> None:
        """User or named-server removal: KubeSpawner's own cleanup, then this server's
        lockstep home claims, one per project (``render_kube.home_claim``); project
        workspaces are shared and kept. ``c.KubeSpawner.delete_pvc = False`` keeps all."""
        await super().delete_forever()
        if not self.delete_pvc:
            return
        for project in sorted(await self.load_projects()):
            name = render_kube.home_claim(project, self.user.name, self.name or "")
            await exponential_backoff(
                partial(self._make_delete_pvc_request, name, self.k8s_api_request_timeout),
                f"Could not delete PVC {name}", timeout=self.k8s_api_request_retry_timeout)

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

    # -- state: {"lockstep": LaunchState}, the Docker spawner's shape --------------------

    _restored: LaunchState | None = None

    def launch_state(self) -> LaunchState | None:
        """What this server runs, from the current launch or the restored state."""
        if self._spec is None:
            return self._restored
        image = self._spec.image
        return LaunchState(project=self._spec.project, stage=self._spec.stage,
                           image=image.reference, lock_hash=image.lock_hash,
                           session=self._session.id if self._session else "",
                           started=self._session.start if self._session else "")

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        launch = self.launch_state()
        if launch is not None:
            state["lockstep"] = launch.to_dict()
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self._restored = from_state(state)
        r = self._restored
        if r is None:
            return
        if r.image:
            self.image = r.image
        if r.session:
            self._session = sessions.Session(
                id=r.session, user=self.user.name, project=r.project, stage=r.stage,
                digest=r.digest, image=r.image, lock_hash=r.lock_hash, start=r.started)

    def clear_state(self) -> None:
        super().clear_state()
        self._spec = None
        self._session = None
        self._restored = None
