"""The JSON answers of the service's API, built from plain data (the handlers do the I/O).

Each builder takes what the source read (``Project``, stage -> ``ImageInfo``) and returns
a JSON-ready dict with sorted, stable content. Host paths of data mounts are not shown (a
mount is its name, target and description); registry credentials never reach here.

Pure: no file, network or clock. It must not decide visibility: callers pass only projects
the requester may see (``spawner.hubservice.visibility``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from spawner.hubservice.images import ImageInfo
from spawner.hubservice.visibility import BadRequest
from spawner.project import Project

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def stage_rows(stages: Sequence[str], images: Mapping[str, ImageInfo | None]) -> list[dict]:
    """One row per site stage, in order: the image its pointer holds, or ``null``."""
    rows = []
    for stage in stages:
        info = images.get(stage)
        rows.append({"stage": stage, **(info.to_json() if info else
                     {"reference": None, "digest": None, "lock_hash": None,
                      "created": None, "size": None, "layers": None})})
    return rows


def project_summary(project: Project, stages: Sequence[str], digests: Mapping[str, str]) -> dict:
    """A project in the list: name, description and each stage's digest (``null``: none)."""
    return {"name": project.name, "description": project.description,
            "stages": {stage: digests.get(stage) for stage in stages}}


def project_detail(project: Project, stages: Sequence[str],
                   images: Mapping[str, ImageInfo | None]) -> dict:
    """One project: description, data mounts, GPU, workspace and each stage's image."""
    gpu = project.gpu
    return {
        "name": project.name,
        "description": project.description,
        "data": [{"name": m.name, "target": m.target, "description": m.description,
                  "read_only": True} for m in project.data],
        "gpu": {"count": gpu.count, "vendor": gpu.vendor, "type": gpu.type} if gpu else None,
        "workspace": ({"target": project.workspace.target}
                      if project.workspace.enabled else None),
        "stages": stage_rows(stages, images),
    }


def diff_side(value: str, *, stages: Sequence[str], name: str) -> tuple[str, str]:
    """``("stage", dev)`` or ``("digest", sha256:...)`` for a ``from``/``to`` query value;
    ``BadRequest`` naming what is allowed otherwise."""
    if value in stages:
        return "stage", value
    if DIGEST_RE.match(value):
        return "digest", value
    raise BadRequest(f"{name}={value!r} is neither a stage ({', '.join(stages)}) nor a digest "
                     "(sha256: and 64 hex digits); e.g. ?from=dev&to=qa")
