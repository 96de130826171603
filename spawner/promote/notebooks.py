"""The notebooks gate: run every ``notebooks/<project>/*.ipynb`` headless in the image.

``notebook_container`` is pure: from the project, the image (by digest), the resolved
data sources and the notebooks folder it returns the Docker create body, built with the
same ``build_launch_spec`` + ``render_container`` as a user's server, then narrowed:
no network (``none``), no named volumes (home and ``/tmp`` are tmpfs, there is no
workspace), the notebooks folder bind-mounted read-only at ``/notebooks``, no GPU. It stays
hardened: uid 1000, ``CapDrop ALL``, ``no-new-privileges``, read-only root, the project's
memory/CPU/pids limits and isolation runtime.

``run_notebooks`` is the I/O: it pulls the digest into the engine when missing, runs the
container once for all notebooks (executed in name order with nbclient, each with its own
kernel), removes it, and returns one ``NotebookResult`` per notebook. An image without
nbclient fails the gate with a message naming the fix.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from spawner.docker.render import DockerOptions, render_container
from spawner.errors import LockstepError
from spawner.launch.spec import HOME, ImageRef, LaunchOptions, Mount, build_launch_spec
from spawner.project import Project

MOUNT_POINT = "/notebooks"
MARKER = "LOCKSTEP-NOTEBOOK-RESULT "
GATE_LABEL = "org.lockstep.gate"
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
    spec = dataclasses.replace(
        spec,
        mounts=tuple(sorted(mounts, key=lambda m: (m.target, m.kind))),
        network="none",
        labels=tuple(sorted({**spec.labels_dict(), GATE_LABEL: "notebooks"}.items())),
    )
    body = render_container(spec, DockerOptions(runtime=runtime, working_dir="/tmp"))
    body["NetworkingConfig"] = {"EndpointsConfig": {}}
    body.pop("ExposedPorts", None)
    body["Entrypoint"] = []  # the image's tini -g would be PID 1 with Init as well
    return dict(sorted(body.items()))


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


def _ensure_image(api, reference: str) -> None:
    import docker

    try:
        api.inspect_image(reference)
        return
    except docker.errors.ImageNotFound:
        pass
    repository, digest = reference.split("@", 1)
    try:
        api.pull(repository, tag=digest)
    except docker.errors.APIError as exc:
        raise NotebookGateError(
            f"the engine could not pull {reference}: {exc.explanation or exc}"
        ) from None


def run_notebooks(
    body: dict, notebooks: Sequence[str], *, timeout: float = 1800
) -> list[NotebookResult]:
    """Run the gate container (see ``notebook_container``) and collect its results."""
    import docker

    try:
        api = docker.APIClient(version="auto", timeout=60)
    except docker.errors.DockerException as exc:
        raise NotebookGateError(
            f"no Docker engine to run the notebooks in ({exc}); start dockerd"
        ) from None
    container = None
    try:
        _ensure_image(api, body["Image"])
        container = api.create_container_from_config(body, None)["Id"]
        api.start(container)
        started = time.monotonic()
        try:
            api.wait(container, timeout=timeout)
        except Exception:  # noqa: BLE001 - requests' ReadTimeout, surfaced as a gate failure
            raise NotebookGateError(
                f"the notebooks did not finish within {timeout:.0f} s; make them faster"
            ) from None
        output = api.logs(container, stdout=True, stderr=True).decode(errors="replace")
        results = parse_results(output, notebooks)
        if len(notebooks) == 1 and results[0].seconds == 0:
            results[0] = dataclasses.replace(
                results[0], seconds=round(time.monotonic() - started, 3)
            )
        return results
    except docker.errors.APIError as exc:
        raise NotebookGateError(
            f"the engine refused the notebook container: {exc.explanation or exc}"
        ) from None
    finally:
        if container is not None:
            try:
                api.remove_container(container, force=True)
            except docker.errors.APIError:
                pass
        api.close()


def list_notebooks(notebooks_dir: Path) -> list[str]:
    return sorted(p.name for p in Path(notebooks_dir).glob("*.ipynb") if p.is_file())


def notebooks_gate(settings, project: Project):
    """The gate: every notebook of ``project`` must run in the image being promoted."""
    from spawner.launch.datamounts import resolve_data_sources
    from spawner.promote.gates import Gate, GateContext, timed

    def check(ctx: GateContext) -> tuple[bool, str]:
        folder = Path(settings.notebooks_dir).expanduser().resolve() / project.name
        names = list_notebooks(folder)
        if not names:
            return True, f"no notebooks in {folder}; nothing to run"
        body = notebook_container(
            project=project,
            image=ImageRef(ctx.reference),
            notebooks=names,
            data_sources=resolve_data_sources(project, settings.data_roots),
            notebooks_dir=str(folder),
            runtime=_runtime(project),
        )
        results = run_notebooks(body, names)
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


def _runtime(project: Project) -> str:
    import docker

    from spawner.docker.runtimes import engine_runtime

    if project.isolation == "runc":
        return ""
    client = docker.APIClient(version="auto", timeout=30)
    try:
        return engine_runtime(project.isolation, project=project.name, info=client.info())
    finally:
        client.close()
