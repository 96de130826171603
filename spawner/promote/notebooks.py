"""The notebooks gate: run every ``notebooks/<project>/*.ipynb`` headless in the image.

``notebook_container`` is pure: from the project, the image (by digest), the resolved
data sources and the notebooks folder it returns the Docker create body, built with the
same ``build_launch_spec`` + ``render_container`` as a user's server, then narrowed:
no network (``none``), no named volumes (home and ``/tmp`` are tmpfs, there is no
workspace), the notebooks folder bind-mounted read-only at ``/notebooks``, no GPU. It stays
hardened: uid 1000, ``CapDrop ALL``, ``no-new-privileges``, read-only root, the project's
memory/CPU/pids limits and isolation runtime.

``run_gate`` is the I/O: it prepares the engine with ``spawner.docker.prepare`` and the
site's ``DockerSite`` (the digest pulled when missing, the isolation runtime the hub would
use, e.g. ``c.LockstepDockerSpawner.runtime_names``; no network or volume is needed), runs
the container once for all notebooks (executed in name order with nbclient, each with its
own kernel) as a one-shot container that is always removed, and returns one
``NotebookResult`` per notebook. An image without nbclient fails the gate with a message
naming the fix.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from spawner.docker import engine
from spawner.docker.engine import EngineError, EngineTimeout
from spawner.docker.oneshot import run_to_end
from spawner.docker.prepare import PrepareError, prepare
from spawner.docker.render import DockerOptions, render_container
from spawner.docker.site import load_docker_site
from spawner.errors import LockstepError
from spawner.labels import GATE
from spawner.launch.spec import (
    HOME,
    ImageRef,
    LaunchOptions,
    LaunchSpec,
    Mount,
    build_launch_spec,
)
from spawner.project import Project

MOUNT_POINT = "/notebooks"
MARKER = "LOCKSTEP-NOTEBOOK-RESULT "
CELL_TIMEOUT = 600

RUNNER = r"""
import glob, json, os, sys, time, traceback
try:
    import nbformat
    from nbclient import NotebookClient
except ImportError as exc:
    print("LOCKSTEP-NOTEBOOK-RESULT " + json.dumps({"error": "nbclient", "detail": str(exc)}))
    sys.exit(3)
names = sys.argv[1:]
os.makedirs("/tmp/run", exist_ok=True)
for name in names:
    started = time.monotonic()
    result = {"notebook": name, "ok": True, "message": ""}
    try:
        nb = nbformat.read(os.path.join("/notebooks", name), as_version=4)
        NotebookClient(nb, timeout=int(os.environ.get("LOCKSTEP_CELL_TIMEOUT", "600")),
                       kernel_name="python3",
                       resources={"metadata": {"path": "/tmp/run"}}).execute()
    except Exception as exc:
        detail = (getattr(exc, "ename", "") + ": " + getattr(exc, "evalue", "")).strip(": ")
        cell = ""
        for i, c in enumerate(nb.cells if "nb" in dir() else []):
            for out in c.get("outputs", []):
                if out.get("output_type") == "error":
                    cell = f"cell {i + 1}: "
        result.update(ok=False, message=cell + (detail or f"{type(exc).__name__}: {exc}")[:500])
    result["seconds"] = round(time.monotonic() - started, 3)
    print("LOCKSTEP-NOTEBOOK-RESULT " + json.dumps(result), flush=True)
"""


class NotebookGateError(LockstepError):
    """The notebooks could not be run at all (engine, image or runtime problem)."""


@dataclass(frozen=True)
class NotebookResult:
    notebook: str
    ok: bool
    seconds: float
    message: str = ""


def notebook_spec(
    *,
    project: Project,
    image: ImageRef,
    data_sources: Mapping[str, str],
    notebooks_dir: str,
    notebooks: Sequence[str],
    user: str = "lockstep-gate",
) -> LaunchSpec:
    """The gate's launch spec: a server's, narrowed (no network, no volumes, no GPU)."""
    options = LaunchOptions(
        network_prefix="lockstep-gate", tmpfs_targets=("/tmp",), tmpfs_size="1Gi"
    )
    spec = build_launch_spec(
        project=project,
        image=image,
        user=user,
        stage="gate",
        data_sources=data_sources,
        options=options,
        gpu=False,
        env={"PYTHONDONTWRITEBYTECODE": "1", "LOCKSTEP_CELL_TIMEOUT": str(CELL_TIMEOUT)},
        command=("python", "-c", RUNNER, *notebooks),
    )
    mounts = [m for m in spec.mounts if m.kind in ("data", "tmpfs")]
    mounts.append(Mount("data", "notebooks", notebooks_dir, MOUNT_POINT, read_only=True))
    mounts.append(Mount("tmpfs", "home", "", HOME, read_only=False, size="256Mi"))
    return dataclasses.replace(
        spec,
        mounts=tuple(sorted(mounts, key=lambda m: (m.target, m.kind))),
        network="none",
        labels=tuple(sorted({**spec.labels_dict(), GATE: "notebooks"}.items())),
    )


def render_gate(spec: LaunchSpec, *, runtime: str = "") -> dict:
    """The Docker create body of the gate's spec, on engine runtime ``runtime``."""
    body = render_container(spec, DockerOptions(runtime=runtime, working_dir="/tmp"))
    body["NetworkingConfig"] = {"EndpointsConfig": {}}
    body.pop("ExposedPorts", None)
    body["Entrypoint"] = []  # the image's tini -g would be PID 1 with Init as well
    return dict(sorted(body.items()))


def notebook_container(
    *,
    project: Project,
    image: ImageRef,
    data_sources: Mapping[str, str],
    notebooks_dir: str,
    notebooks: Sequence[str],
    runtime: str = "",
    user: str = "lockstep-gate",
) -> dict:
    """The Docker create body that runs ``notebooks`` (file names) from ``notebooks_dir``."""
    spec = notebook_spec(project=project, image=image, data_sources=data_sources,
                         notebooks_dir=notebooks_dir, notebooks=notebooks, user=user)
    return render_gate(spec, runtime=runtime)


def parse_results(output: str, notebooks: Sequence[str]) -> list[NotebookResult]:
    """Results from the runner's marker lines; a notebook with none gets a failure."""
    found: dict[str, NotebookResult] = {}
    for line in output.splitlines():
        if not line.startswith(MARKER):
            continue
        data = json.loads(line[len(MARKER) :])
        if data.get("error") == "nbclient":
            raise NotebookGateError(
                "the image has no nbclient, so its notebooks cannot run headless "
                f"({data.get('detail', '')}); add nbclient to the environment "
                "(c.Lockstep.server_packages includes it by default), lock and build again"
            )
        found[data["notebook"]] = NotebookResult(
            data["notebook"],
            bool(data["ok"]),
            float(data.get("seconds", 0)),
            data.get("message", ""),
        )
    tail = output.strip().splitlines()[-3:]
    return [
        found.get(n) or NotebookResult(n, False, 0.0, "did not finish: " + " | ".join(tail))
        for n in notebooks
    ]


def run_notebooks(
    api, body: dict, notebooks: Sequence[str], *, timeout: float = 1800
) -> list[NotebookResult]:
    """Run the gate container (see ``notebook_container``) once and collect its results;
    the container is removed however the run ends."""
    started = time.monotonic()
    try:
        done = run_to_end(api, body, timeout=timeout)
    except EngineTimeout:
        raise NotebookGateError(
            f"the notebooks did not finish within {timeout:.0f} s; make them faster"
        ) from None
    except EngineError as exc:
        raise NotebookGateError(f"the engine could not run the notebook container: {exc}") \
            from None
    results = parse_results(done.output, notebooks)
    if len(notebooks) == 1 and results[0].seconds == 0:
        results[0] = dataclasses.replace(
            results[0], seconds=round(time.monotonic() - started, 3)
        )
    return results


def run_gate(settings, project: Project, *, image: ImageRef, notebooks_dir: str,
             notebooks: Sequence[str], timeout: float = 1800) -> list[NotebookResult]:
    """Prepare the engine as the hub would (``c.LockstepDockerSpawner`` runtime names) and
    run ``notebooks`` in ``image``."""
    from spawner.launch.datamounts import site_data_sources

    spec = notebook_spec(project=project, image=image, notebooks=notebooks,
                         data_sources=site_data_sources(project, settings),
                         notebooks_dir=notebooks_dir)
    try:
        api = engine.connect(timeout=60)
    except EngineError as exc:
        raise NotebookGateError(f"no Docker engine to run the notebooks in: {exc}") from None
    try:
        try:
            ready = prepare(api, spec, project=project, site=load_docker_site(settings))
        except PrepareError as exc:
            raise NotebookGateError(f"the notebooks cannot run: {exc}") from None
        return run_notebooks(api, render_gate(spec, runtime=ready.runtime), notebooks,
                             timeout=timeout)
    finally:
        api.close()


def list_notebooks(notebooks_dir: Path) -> list[str]:
    return sorted(p.name for p in Path(notebooks_dir).glob("*.ipynb") if p.is_file())


def notebooks_gate(settings, project: Project):
    """The gate: every notebook of ``project`` must run in the image being promoted."""
    from spawner.promote.gates import Gate, GateContext, timed

    def check(ctx: GateContext) -> tuple[bool, str]:
        folder = Path(settings.notebooks_dir).expanduser().resolve() / project.name
        names = list_notebooks(folder)
        if not names:
            return True, f"no notebooks in {folder}; nothing to run"
        results = run_gate(settings, project, image=ImageRef(ctx.reference),
                           notebooks_dir=str(folder), notebooks=names)
        failed = [r for r in results if not r.ok]
        if failed:
            first = failed[0]
            return False, (
                f"{len(failed)} of {len(results)} notebook(s) failed; "
                f"{folder / first.notebook} failed: {first.message}"
            )
        ran = ", ".join(f"{r.notebook} {r.seconds:.1f} s" for r in results)
        return True, f"{len(results)} notebook(s) ran: {ran}"

    return Gate("notebooks", lambda ctx: timed("notebooks", lambda: check(ctx)))
