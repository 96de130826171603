"""What a spawn runs: ``user_options`` + who asks -> project, stage and image, or a refusal.

One rule set for both spawners (Docker and Kubernetes), so a request means the same thing
and is refused the same way on either::

    {"project": "iris"}                           newest stage that has an image
    {"project": "iris", "stage": "qa"}            that stage's digest
    {"project": "iris", "digest": "sha256:..."}   a pinned digest some stage has held
                                                  (the trail says so; allow_any_digest)
    {"session": "4f1c2a9b0e7d"}                   the exact image a recorded session ran

The spawner supplies the I/O as three awaitables (``ImageSource``): the stage pointers of a
project, a pinned digest's reference, and a recorded session. This module decides; it reads
nothing itself. Refusals are ``access.LaunchRefused`` (403/404/409) or
``spawnoptions.OptionsError`` (400), each with the fix in its message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from spawner.launch import access
from spawner.launch.options import OptionsError, Request, parse_user_options
from spawner.launch.spec import ImageRef
from spawner.project import Project
from spawner.settings import unknown_stage


@dataclass(frozen=True)
class ImageSource:
    """The I/O a choice needs, provided by the spawner (registry and session log)."""

    stage_images: Callable[[Project], Awaitable[Mapping[str, ImageRef]]]
    """Stage -> image for every stage of a project that has a pointer."""
    pinned_image: Callable[[Project, str, str], Awaitable[ImageRef]]
    """(project, digest, stage) -> that digest in the stage's repository."""
    find_session: Callable[[str], Awaitable]
    """Session id -> the recorded ``sessions.Session`` (raises ``LaunchRefused`` 404)."""


@dataclass(frozen=True)
class Choice:
    """A spawn request resolved to what will run."""

    project: Project
    stage: str
    image: ImageRef
    request: Request
    notice: str = ""
    """'' when the image was read from the registry just now; else why it is the last
    known digest (the registry did not answer), for the spawn page and the log."""


async def choose(user_options: Request | Mapping | None, who: access.Requester,
                 projects: Mapping[str, Project], stages: Sequence[str],
                 source: ImageSource) -> Choice:
    """Resolve ``user_options`` (or the ``Request`` already parsed from them) for ``who``;
    refuse before anything is started. The options are parsed at most once here."""
    request = user_options if isinstance(user_options, Request) else \
        parse_user_options(user_options or {})
    notice = ""
    if request.session:
        old = await source.find_session(request.session)
        project = access.check_replay(projects, session_id=old.id, session_user=old.user,
                                      session_project=old.project, who=who)
        image, stage = ImageRef(old.image, lock_hash=old.lock_hash), old.stage
    else:
        name, wanted = access.parse_choice({"project": request.project,
                                            "stage": request.stage})
        project = access.check_project(projects, name, who)
        if request.digest:
            if wanted and wanted not in stages:
                raise OptionsError(unknown_stage(wanted, stages))
            image = await source.pinned_image(project, request.digest, wanted or "")
            stage = wanted or "pinned"
        else:
            images = await source.stage_images(project)
            stage = access.choose_stage(project.name, wanted, stages=stages,
                                        available=list(images))
            image = images[stage]
            notice = getattr(images, "notice", "")
    if request.gpu and project.gpu is None:
        raise OptionsError(f"Project {project.name!r} has no GPUs to give; start it with "
                           '"gpu": false or add a gpu: section to its project.yaml.')
    return Choice(project, stage, image, request, notice)


async def launchable(projects: Mapping[str, Project], who: access.Requester,
                     source: ImageSource, log=None,
                     ) -> tuple[list[Project], dict[str, dict[str, ImageRef]]]:
    """The projects ``who`` may launch, and for each its stages that hold an image.

    A project whose registry cannot be read is left out of the second part (logged)."""
    import asyncio

    mine = access.usable_projects(projects.values(), who)
    found = await asyncio.gather(*(source.stage_images(p) for p in mine), return_exceptions=True)
    ready = {}
    for project, images in zip(mine, found, strict=True):
        if isinstance(images, BaseException):
            if log is not None:
                log.warning("lockstep: stages of %s: %s", project.name, images)
            continue
        ready[project.name] = dict(images)
    return mine, ready


def settings_source(settings) -> ImageSource:
    """The usual ``ImageSource``: stage pointers in the site's registries through the hub's
    ``pointercache`` (shared for ``c.Lockstep.stage_pointer_ttl``, last known digests when
    the registry does not answer) and the session log in its data dir (``sessions``), each
    read in a worker thread."""
    import asyncio

    from spawner import sessions
    from spawner.launch import pointercache, stages

    async def stage_images(project: Project) -> Mapping[str, ImageRef]:
        return await pointercache.cache_for(settings).stage_images(settings, project.name)

    async def held(project: Project) -> set[str]:
        from spawner.promote.trail import AuditTrail, held_digests

        trail = AuditTrail(settings.data_path("audit.jsonl"))
        records = await asyncio.to_thread(trail.read, project.name)
        now = {image.digest for image in (await stage_images(project)).values()}
        return now | held_digests(records, project=project.name)

    async def pinned_image(project: Project, digest: str, stage: str) -> ImageRef:
        if not settings.allow_any_digest and digest not in await held(project):
            raise access.LaunchRefused(
                f"{digest} was never on a stage of {project.name!r} (no stage points at it "
                "and the audit trail records no promotion of it); start a stage instead, "
                f"promote it first (`lockstep promote {project.name} --to ...`), or ask "
                "the site to set c.Lockstep.allow_any_digest = True.", status=403)
        source = stage if stage in settings.stages else settings.stages[0]
        ref = f"{stages.stage_repository(settings, project.name, source)}@{digest}"
        return ImageRef(ref, await asyncio.to_thread(stages.lock_hash_of, settings, ref, True))

    async def find_session(session_id: str):
        path = settings.data_path(sessions.FILENAME)
        try:
            return await asyncio.to_thread(sessions.find_session, path, session_id)
        except sessions.SessionError as exc:
            raise access.LaunchRefused(str(exc), status=404) from None

    return ImageSource(stage_images, pinned_image, find_session)
