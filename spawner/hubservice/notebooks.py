"""The notebooks of a user's project folders, each with the environment it was saved in.

Every lockstep image records project, stage, digest and lock hash in ``metadata.lockstep``
of each notebook its server saves (``spawner.image.notebookhook``). This module reads them
back on a Docker host: a one-shot container (``spawner.docker.oneshot``) from an image of
the project that is already on the host mounts the user's home volume of the project
(``launch.spec.home_volume``) and the project's workspace volume, both read-only, walks
them with the image's own python (standard library only) and prints one marker line per
notebook; ``parse_scan`` turns the lines into ``Notebook`` values.

Guarantees: the scan container has no network, a read-only root, no capabilities, no new
privileges, runs as uid 1000 with small memory, CPU and pids limits and a time limit, and
is always removed; volumes are only mounted when they exist (a missing one is never
created); only the requester's own home volume and the workspace of a project they may
use are ever mounted (the caller checks visibility; the home volume is named after the
authenticated user, never a request field). What a notebook claims is untrusted: a digest
that is not ``sha256:<64 hex>`` is dropped, paths with ``..`` or a leading ``/`` are
skipped. On Kubernetes there is no volume to mount from the service: ``scan`` refuses
with a message (``NoEngine``), and a notebook's digest can still be reopened by digest.

``scan_body`` and ``parse_scan`` are pure; ``scan`` does the engine I/O (blocking: call it
from a worker thread). It must not decide visibility nor start servers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from spawner.errors import LockstepError
from spawner.labels import MANAGED, PROJECT, ROLE
from spawner.launch.spec import GID, HOME, UID, home_volume, workspace_volume
from spawner.settings import ENV_PREFIX

MARKER = "LOCKSTEP-NOTEBOOK "
SCAN_ROOT = "/scan"
SCAN_TIMEOUT = 60.0
LIMIT = 2000  # notebooks per folder
MAX_BYTES = 32 * 2**20
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
SCRIPT = r"""
import json, os, sys
LIMIT, MAX_BYTES, DEPTH, MARK, TOP = int(sys.argv[1]), int(sys.argv[2]), 8, *sys.argv[3:5]
for location in sys.argv[5:]:
    root, count = os.path.join(TOP, location), 0
    for here, dirs, files in os.walk(root):
        rel = os.path.relpath(here, root)
        depth = 0 if rel == "." else rel.count("/") + 1
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and depth < DEPTH)
        for name in sorted(files):
            full = os.path.join(here, name)
            if not name.endswith(".ipynb") or name.startswith(".") or os.path.islink(full):
                continue
            count += 1
            if count > LIMIT:
                break
            out = {"location": location, "path": os.path.relpath(full, root)}
            try:
                st = os.stat(full)
                out.update(size=st.st_size, mtime=int(st.st_mtime))
                if st.st_size > MAX_BYTES:
                    out["error"] = "larger than %d bytes" % MAX_BYTES
                else:
                    with open(full, "rb") as handle:
                        meta = (json.load(handle).get("metadata") or {}).get("lockstep")
                    out["lockstep"] = meta if isinstance(meta, dict) else None
            except Exception as exc:
                out["error"] = type(exc).__name__
            print(MARK + json.dumps(out), flush=True)
"""


class NoEngine(LockstepError):
    """The service cannot reach a Docker engine (e.g. on Kubernetes): 501."""

    status = 501


class NoImage(LockstepError):
    """No image of the project is on this host to read the folders with: 409."""

    status = 409


@dataclass(frozen=True)
class Folder:
    """A volume to read: ``location`` (``home`` or ``workspace``), the volume's name, and
    where the server mounts it (``HOME`` or the workspace target)."""

    location: str
    volume: str
    target: str


@dataclass(frozen=True)
class Notebook:
    """One notebook and the environment it was saved in ('' when it does not say)."""

    location: str
    path: str
    size: int = 0
    mtime: int = 0
    project: str = ""
    stage: str = ""
    digest: str = ""
    lock_hash: str = ""
    error: str = ""

    def to_json(self) -> dict:
        return {
            "location": self.location,
            "path": self.path,
            "size": self.size,
            "mtime": self.mtime,
            "project": self.project or None,
            "stage": self.stage or None,
            "digest": self.digest or None,
            "lock_hash": self.lock_hash or None,
            "error": self.error or None,
        }


def folders(project, user: str) -> list[Folder]:
    """The folders of ``project`` that ``user`` may read: their home, the workspace."""
    found = [Folder("home", home_volume(project.name, user), HOME)]
    if project.workspace.enabled:
        found.append(Folder("workspace", workspace_volume(project.name), project.workspace.target))
    return found


def scan_body(image: str, project: str, folders: Sequence[Folder]) -> dict:
    """The hardened Docker create body that lists ``folders`` (read-only) with ``image``'s
    python. Pure."""
    return {
        "Image": image,
        "User": f"{UID}:{GID}",
        "Entrypoint": [
            f"{ENV_PREFIX}/bin/python",
            "-I",
            "-S",
            "-B",
            "-c",
            SCRIPT,
            str(LIMIT),
            str(MAX_BYTES),
            MARKER,
            SCAN_ROOT,
            *(f.location for f in folders),
        ],
        "Env": ["PYTHONDONTWRITEBYTECODE=1"],
        "WorkingDir": SCAN_ROOT,
        "NetworkDisabled": True,
        "Labels": {MANAGED: "true", PROJECT: project, ROLE: "notebook-scan"},
        "HostConfig": {
            "NetworkMode": "none",
            "ReadonlyRootfs": True,
            "CapDrop": ["ALL"],
            "SecurityOpt": ["no-new-privileges:true"],
            "Memory": 256 * 2**20,
            "NanoCpus": 500_000_000,
            "PidsLimit": 16,
            "Mounts": [
                {
                    "Type": "volume",
                    "Source": f.volume,
                    "Target": f"{SCAN_ROOT}/{f.location}",
                    "ReadOnly": True,
                    "VolumeOptions": {"NoCopy": True},
                }
                for f in folders
            ],
        },
    }


def _safe_path(path: object) -> str:
    if not isinstance(path, str) or not path or path.startswith("/"):
        return ""
    return "" if ".." in path.split("/") else path


def _text(meta: Mapping, key: str) -> str:
    value = meta.get(key)
    return value if isinstance(value, str) and len(value) <= 200 else ""


def parse_scan(output: str, locations: Sequence[str]) -> list[Notebook]:
    """``Notebook`` values from the scan's marker lines, sorted by (location, path); lines
    that do not parse, unknown locations and unsafe paths are skipped. Pure."""
    found = []
    for line in output.splitlines():
        if not line.startswith(MARKER):
            continue
        try:
            data = json.loads(line[len(MARKER) :])
        except ValueError:
            continue
        path = _safe_path(data.get("path")) if isinstance(data, dict) else ""
        if not path or data.get("location") not in locations:
            continue
        meta = data.get("lockstep") if isinstance(data.get("lockstep"), dict) else {}
        digest = _text(meta, "digest")
        found.append(
            Notebook(
                location=data["location"],
                path=path,
                size=int(data.get("size") or 0),
                mtime=int(data.get("mtime") or 0),
                project=_text(meta, "project"),
                stage=_text(meta, "stage"),
                digest=digest if DIGEST_RE.match(digest) else "",
                lock_hash=_text(meta, "lock_hash"),
                error=str(data.get("error") or "")[:200],
            )
        )
    return sorted(found, key=lambda n: (n.location, n.path))


def scan(project: str, wanted: Sequence[Folder], images: Sequence[str]) -> list[Notebook]:
    """List the notebooks of the ``wanted`` folders that exist, with the first of
    ``images`` (references) that is on this host. Blocking."""
    try:
        from spawner.docker import engine
        from spawner.docker.oneshot import run_to_end

        api = engine.connect(timeout=30)
    except (ImportError, LockstepError) as exc:
        raise NoEngine(
            f"the lockstep service cannot list notebooks without a Docker engine "
            f"({exc}); on Kubernetes, reopen a notebook's digest with POST "
            'api/reopen {"project": ..., "digest": ...}'
        ) from None
    try:
        present = [f for f in wanted if engine.has_volume(api, f.volume)]
        if not present:
            return []
        image = next((ref for ref in images if engine.has_image(api, ref)), "")
        if not image:
            raise NoImage(
                f"no image of project {project!r} is on this host yet, so its "
                "folders cannot be read; start a server of the project once, "
                "then list its notebooks again"
            )
        done = run_to_end(api, scan_body(image, project, present), timeout=SCAN_TIMEOUT)
        if done.code != 0:
            raise LockstepError(
                f"listing the notebooks of {project!r} failed "
                f"(exit {done.code}): {done.output.strip()[-300:]}"
            )
        return parse_scan(done.output, [f.location for f in present])
    finally:
        api.close()
