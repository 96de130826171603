"""``lockstep run PROJECT --stage S -- COMMAND...``: run a command in a stage's image.

The command runs in the image the stage points at (by digest), or a pinned ``--digest``,
or the exact image of a recorded session (``--session ID``), with the project's data
read-only and its workspace, hardened exactly as a notebook server, on an engine prepared
as the hub prepares it (``c.LockstepDockerSpawner`` runtime names, GPU mode, internal
network, firewall: ``spawner.docker.site``). Its output streams through; ``lockstep run``
exits with the command's exit code. The run is recorded in the session log
(``kind: job``), and its container is removed however the run ends.
"""

from __future__ import annotations

import argparse
import getpass
import signal
import sys

from spawner.docker import engine, jobs
from spawner.docker.prepare import prepare
from spawner.docker.site import load_docker_site
from spawner.errors import LockstepError
from spawner.launch.datamounts import site_data_sources
from spawner.project import load_project
from spawner.sessions import (
    FILENAME,
    Session,
    append_event,
    new_session_id,
    now_iso,
    start_event,
    stop_event,
)


def _add_options(parser: argparse.ArgumentParser, default=None) -> None:
    which = parser.add_argument_group("which image (one of)")
    which.add_argument("--stage", metavar="STAGE", default=default,
                       help="the image STAGE points at now")
    which.add_argument("--digest", metavar="sha256:...", default=default,
                       help="a pinned digest (in --stage's repository, else the first stage's)")
    which.add_argument("--session", metavar="ID", default=default,
                       help="the project and digest of recorded session ID")
    parser.add_argument("--user", metavar="NAME", default=default,
                        help="user recorded in the session log and owning the home volume "
                        "(default: the caller's login name)")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a command in a project's image (by stage, digest or session)",
        description="Run COMMAND in the project's image by digest, with its data "
        "(read-only) and workspace, hardened like a notebook server; stream its output and "
        "exit with its exit code. Examples:\n"
        "  lockstep run forecast --stage prod -- python /data/sales/check.py\n"
        "  lockstep run forecast --digest sha256:... -- python -c 'import numpy'\n"
        "  lockstep run --session 4f1c2a9b0e7d -- python -c 'import numpy'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_options(parser)
    # argparse cannot mix an optional positional with a '--' command; split it ourselves
    parser.add_argument("rest", nargs=argparse.REMAINDER, metavar="[PROJECT] -- COMMAND ...",
                        help="project name (optional with --session), then '--' and the "
                        "command with its arguments")
    parser.set_defaults(func=run)


def parse_rest(args: argparse.Namespace) -> tuple[argparse.Namespace, tuple[str, ...]]:
    """Split ``[PROJECT] [options] -- COMMAND...``; options may sit on either side of PROJECT."""
    rest = list(args.rest)
    cut = rest.index("--") if "--" in rest else len(rest)
    inner = argparse.ArgumentParser(prog="lockstep run", add_help=False, exit_on_error=False)
    _add_options(inner, default=argparse.SUPPRESS)
    inner.add_argument("project", nargs="?", default=None)
    usage = "write: lockstep run PROJECT --stage STAGE -- COMMAND ..."
    try:
        found, extra = inner.parse_known_args(rest[:cut])
    except argparse.ArgumentError as exc:
        raise LockstepError(f"{exc}; {usage}") from None
    if extra:
        raise LockstepError(f"unexpected {' '.join(extra)!r} before '--' (the command goes "
                            f"after '--'); {usage}")
    merged = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "rest"})
    for key, value in vars(found).items():
        setattr(merged, key, value)
    return merged, tuple(rest[cut + 1:])


EXIT_HINTS = {
    126: "it is not executable in the image",
    127: "it was not found in the image: the program must be installed in the project "
         "environment (/opt/env/bin is on PATH) or be given as an absolute path",
    130: "interrupted",
    137: "killed (out of memory, or stopped)",
}


def _terminate(signum, frame):  # SIGTERM -> the same cleanup path as Ctrl-C
    raise KeyboardInterrupt


def _progress(message: str) -> None:
    print(f"lockstep run: {message}", file=sys.stderr, flush=True)


def _connect():
    """A control client (bounded calls) and a stream client (no read timeout)."""
    control = engine.connect(timeout=120)
    try:
        return control, engine.connect(timeout=None)
    except BaseException:
        control.close()
        raise


def run(args, settings) -> int:
    args, command = parse_rest(args)
    if args.session and (args.stage or args.digest):
        raise LockstepError("--session already fixes the image; drop --stage/--digest")
    target = jobs.resolve_target(settings, project=args.project, stage=args.stage,
                                 digest=args.digest, session=args.session)
    project = load_project(settings.project_dir(target.project))
    site = load_docker_site(settings)
    user = args.user or getpass.getuser()
    spec = jobs.job_spec(
        project=project, image=target.image, user=user, stage=target.stage,
        data_sources=site_data_sources(project, settings), command=command,
    )
    api, stream_api = _connect()
    session_id = new_session_id()
    name = jobs.container_name(project.name, session_id)
    session = Session(id=session_id, user=user, project=project.name, stage=target.stage,
                      digest=target.image.digest, image=target.image.reference,
                      lock_hash=target.image.lock_hash, server_name="job", start="")
    log = settings.data_path(FILENAME)
    started: list[Session] = []

    def on_started(container_id: str) -> None:
        record = Session(**{**session.to_json(), "container_id": container_id,
                            "start": now_iso()})
        append_event(log, {**start_event(record), **jobs.session_event_extra(command, target)})
        started.append(record)
        _progress(f"session {session_id}: {project.name} {target.stage} "
                  f"{target.image.digest[:19]} running {' '.join(command)}")

    previous = signal.signal(signal.SIGTERM, _terminate)
    code = jobs.NOT_STARTED
    try:
        ready = prepare(api, spec, project=project, site=site, chown=True,
                        notebooks_dir=settings.notebooks_dir,
                        report=lambda message, _fraction: _progress(message))
        body = jobs.job_body(spec, project=project, session_id=session_id,
                             runtime=ready.runtime, gpu_mode=ready.gpu_mode,
                             recursive_read_only=ready.recursive_read_only)
        code = jobs.run_container(api, body, name=name, on_started=on_started,
                                  stream_api=stream_api)
    except KeyboardInterrupt:
        code = 130
        _progress(f"interrupted; container {name} removed")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if started:
            append_event(log, {**stop_event(started[0], now_iso()), "kind": "job",
                               "exit_code": code})
        api.close()
        stream_api.close()
    if code != 0:
        hint = EXIT_HINTS.get(code, "")
        _progress(f"session {session_id}: the command {' '.join(command)!r} exited with code "
                  f"{code}{'; ' + hint if hint else ''}")
    return code
