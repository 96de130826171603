"""Jobs: one command run to completion in a project's image, by digest, hardened like a server.

A job is a notebook server's twin with a command instead of ``jupyterhub-singleuser``:
the same ``launch.build_launch_spec`` (project data read-only, the shared workspace, the
user's home, limits, labels) rendered by the same ``render_docker.render_container``, so
a job can do nothing a spawned server could not. What a job adds: the labels
``org.lockstep.kind=job`` and ``org.lockstep.session=<id>``, the container name
``lockstep-job_<project>_<session id>``, and the workspace as working directory.

``run_container`` is the engine part: create, start, stream stdout/stderr as they come,
wait, and **always** remove the container (normal exit, failure, Ctrl-C, SIGTERM), through
``spawner.docker.oneshot``. It returns the command's exit code. The engine is made ready
for the job by ``spawner.docker.prepare`` with the site's ``DockerSite``, exactly as for a
server. The builders above it are pure.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from spawner.docker import engine
from spawner.docker.engine import EngineError
from spawner.docker.oneshot import one_shot
from spawner.docker.render import DockerOptions, render_container
from spawner.errors import LockstepError
from spawner.labels import KIND, SESSION
from spawner.launch.spec import ImageRef, LaunchOptions, LaunchSpec, build_launch_spec
from spawner.project import Project
from spawner.settings import unknown_stage

NOT_STARTED = 127  # the shell's "command not found"


class JobError(LockstepError):
    """A job that could not be started (the command itself failing is an exit code)."""


@dataclass(frozen=True)
class JobTarget:
    """Which image a job runs, and why: a stage, a pinned digest or a recorded session."""

    project: str
    stage: str
    image: ImageRef
    source: str  # "stage" | "digest" | "session:<id>"


def container_name(project: str, session_id: str) -> str:
    """``lockstep-job_<project>_<session>``: '_' keeps it apart from every server's name."""
    return f"lockstep-job_{project}_{session_id}"


def job_spec(
    *,
    project: Project,
    image: ImageRef,
    user: str,
    stage: str,
    data_sources: Mapping[str, str],
    command: tuple[str, ...],
    options: LaunchOptions | None = None,
    gpu: bool | None = None,
) -> LaunchSpec:
    """The launch spec of a job: a server's spec with ``command``."""
    if not command:
        raise JobError(
            f"no command to run for project {project.name!r}; put it after '--', e.g. "
            f"lockstep run {project.name} --stage prod -- python -c 'print(1)'"
        )
    return build_launch_spec(project=project, image=image, user=user, stage=stage,
                             data_sources=data_sources, options=options or LaunchOptions(), gpu=gpu,
                             command=tuple(command), env={"PYTHONUNBUFFERED": "1"})


def job_body(
    spec: LaunchSpec,
    *,
    project: Project,
    session_id: str,
    runtime: str = "",
    gpu_mode: str = "none",
    recursive_read_only: bool = False,
) -> dict[str, Any]:
    """The Docker create body of a job (``render_docker`` output, job labels added).

    Volumes are mounted ``NoCopy`` as the spawner mounts them once ``prepare.prepare`` has
    handed them to uid 1000 (a copy-up would give the volume root back to the image's owner).
    """
    workdir = project.workspace.target if project.workspace.enabled else spec.home
    options = DockerOptions(
        runtime=runtime, gpu_mode=gpu_mode, working_dir=workdir, volume_nocopy=True,
        recursive_read_only=recursive_read_only,
        extra_labels=((KIND, "job"), (SESSION, session_id)),
    )
    return render_container(spec, options)


def session_event_extra(command: tuple[str, ...], target: JobTarget) -> dict[str, Any]:
    """What a job's start event records beyond a server's session fields."""
    extra: dict[str, Any] = {"kind": "job", "command": list(command), "source": target.source}
    if target.source.startswith("session:"):
        extra["rerun_of"] = target.source.split(":", 1)[1]
    return extra


def _start_failure(exc: EngineError, body: Mapping[str, Any]) -> JobError:
    text = exc.detail
    command = " ".join(body.get("Cmd") or [])
    if "executable file not found" in text or "no such file or directory" in text:
        return JobError(
            f"the command {command!r} could not start in {body['Image']}: {text}. "
            "Check the program name: it must be installed in the project environment "
            "(/opt/env/bin is on PATH) or be an absolute path inside the container."
        )
    return JobError(f"the job container could not start ({text}); see `docker info` and "
                    "the engine log")


def run_container(
    api,
    body: Mapping[str, Any],
    *,
    name: str,
    stdout: BinaryIO | None = None,
    stderr: BinaryIO | None = None,
    on_started: Callable[[str], None] | None = None,
    stream_api=None,
) -> int:
    """Create, start and stream ``body``; return its exit code; always remove it.

    ``api`` is an engine client (``engine.connect()``; its timeout bounds each control
    call); ``stream_api``, when given, has no read timeout and carries the output stream
    and the wait, so a job may stay silent for longer than the control timeout.
    ``on_started(container_id)`` runs once the container is running (the session log's
    start event). A command that cannot be executed raises ``JobError``; one that runs
    and fails returns its exit code.
    """
    out = stdout or sys.stdout.buffer
    err = stderr or sys.stderr.buffer
    waiter = stream_api or api
    with one_shot(api, body, name=name) as container_id:
        # attach before start, as `docker run` does: no output is missed, and the stream
        # ends when the container does, however quickly that is
        stream = engine.attach_output(waiter, container_id)
        try:
            engine.start_container(api, container_id)
        except EngineError as exc:
            raise _start_failure(exc, body) from None
        if on_started is not None:
            on_started(container_id)
        with engine.translated(f"stream the output of {name}"):
            for chunk_out, chunk_err in stream:
                if chunk_out:
                    out.write(chunk_out)
                    out.flush()
                if chunk_err:
                    err.write(chunk_err)
                    err.flush()
        code = engine.wait_container(waiter, container_id)
        return NOT_STARTED if code < 0 else code


# -- which image, and the engine around it (I/O) -------------------------------------------

def check_stage(settings, stage: str) -> str:
    """``stage`` if the site has it, else a ``JobError`` listing the stages."""
    if stage not in settings.stages:
        raise JobError(unknown_stage(stage, settings.stages))
    return stage


def stage_image(settings, project: str, stage: str) -> ImageRef:
    """The digest ``stage`` of ``project`` points at now, or a ``JobError`` naming the fix."""
    from spawner.launch.stages import resolve_stage

    image = resolve_stage(settings, project, check_stage(settings, stage))
    if image is None:
        raise JobError(
            f"stage {stage!r} of project {project!r} has no image yet (no {stage!r} tag in "
            f"its repository). Build one with `lockstep build environments/{project}` and "
            f"promote it to {stage!r} with `lockstep promote {project} --to {stage}`."
        )
    return image


def resolve_target(
    settings,
    *,
    project: str | None,
    stage: str | None = None,
    digest: str | None = None,
    session: str | None = None,
) -> JobTarget:
    """The image a job runs: a recorded session's, a pinned digest, or a stage's."""
    if session:
        from spawner.sessions import FILENAME, find_session

        found = find_session(settings.data_path(FILENAME), session)
        if project and project != found.project:
            raise JobError(f"session {session!r} ran project {found.project!r}, not "
                           f"{project!r}; drop the project name or pick another session")
        if not found.image.endswith("@" + found.digest):
            raise JobError(f"session {session!r} has no image by digest in the log "
                           f"({found.image!r}); it cannot be re-run exactly")
        return JobTarget(found.project, found.stage, ImageRef(found.image, found.lock_hash),
                         f"session:{session}")
    if not project:
        raise JobError("name the project, e.g. `lockstep run forecast --stage prod -- CMD`")
    if digest:
        from spawner.launch.stages import lock_hash_of, stage_repository

        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise JobError(f"--digest {digest!r} is not a digest; write sha256:<64 hex>, as "
                           "`lockstep sessions` or the promotion history shows it")
        where = check_stage(settings, stage) if stage else settings.stages[0]
        reference = f"{stage_repository(settings, project, where)}@{digest}"
        return JobTarget(project, stage or "pinned",
                         ImageRef(reference, lock_hash_of(settings, reference)), "digest")
    if not stage:
        raise JobError(f"say which image to run: --stage ({', '.join(settings.stages)}), "
                       "--digest sha256:... or --session ID")
    return JobTarget(project, stage, stage_image(settings, project, stage), "stage")
