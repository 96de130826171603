"""Pre-pull what the stages hold: stage pointers -> Zero to JupyterHub ``prePuller`` values.

Data-science images are large; a user whose node has never pulled the stage's digest waits
for it. z2jh's continuous pre-puller (a DaemonSet on every user node) and its upgrade hook
pull ``prePuller.extraImages``; :func:`z2jh_values` turns the digests the stage pointers
hold into exactly that block, so ``helm upgrade -f prepull.yaml`` after a promotion puts the
new digest on every node (the hook pulls it before the upgrade completes).

Guarantees: pure and deterministic (same pointers, same values, sorted keys); every image is
pinned by digest (z2jh renders ``name:tag``, so the digest is written as name
``<repo>@sha256`` and tag ``<hex>``); entry names are valid container-name suffixes. It must
not read the registry (the caller resolves the pointers, e.g. ``stages.resolve_stage``) and
must not render the DaemonSet itself: z2jh does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from spawner.launch.spec import ImageRef

PREFIX = "lockstep-"
MAX_KEY = 63 - len("image-pull-")  # z2jh names each init container image-pull-<key>


def entry_key(project: str, stage: str) -> str:
    """``lockstep-<project>-<stage>``, lower-case, a valid DNS label once prefixed."""
    key = re.sub(r"[^a-z0-9-]+", "-", f"{PREFIX}{project}-{stage}".lower()).strip("-")
    if len(key) > MAX_KEY:
        raise ValueError(f"pre-pull entry {key!r} is longer than {MAX_KEY} characters; "
                         f"shorten the project or stage name")
    return key


def extra_images(pointers: Mapping[str, Mapping[str, ImageRef]]) -> dict[str, dict[str, str]]:
    """project -> stage -> image  =>  z2jh ``prePuller.extraImages`` entries."""
    out: dict[str, dict[str, str]] = {}
    for project in sorted(pointers):
        for stage in sorted(pointers[project]):
            image = pointers[project][stage]
            algorithm, hex_digest = image.digest.split(":", 1)
            out[entry_key(project, stage)] = {"name": f"{image.repository}@{algorithm}",
                                              "tag": hex_digest}
    return out


def z2jh_values(pointers: Mapping[str, Mapping[str, ImageRef]]) -> dict:
    """The values file to pass after the overlay: ``{"prePuller": {"extraImages": ...}}``."""
    return {"prePuller": {"extraImages": extra_images(pointers)}}
