"""``lockstep build-hub [images/hub]``: the hub image, from its lock, by the same builder.

``--lock`` first solves ``environment.yml`` (no notebook-server packages added). Progress
goes to stderr; the last stdout line is the image reference by digest
(``127.0.0.1:5000/lockstep/hub@sha256:...``), or with ``--json`` one JSON object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from spawner.commands.build import _epoch
from spawner.errors import LockstepError
from spawner.image.hubimage import HUB_CONFIG, build_hub, lock_hub


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "build-hub",
        help="build the hub image (JupyterHub + KubeSpawner + lockstep) from its lock",
        description="Build FOLDER/conda-lock.yml (default images/hub) into the hub image, "
        "daemonless and reproducible like a project image, and push it to the registry as "
        f"<registry>/<folder name>. It runs `jupyterhub --config {HUB_CONFIG}` as uid 1000.",
    )
    parser.add_argument("folder", nargs="?", default="images/hub", metavar="FOLDER",
                        help="folder with environment.yml and conda-lock.yml (images/hub)")
    parser.add_argument("--lock", action="store_true",
                        help="solve FOLDER/environment.yml into conda-lock.yml first")
    parser.add_argument("--registry", metavar="HOST[:PORT][/NS]",
                        help="registry to push to (default: c.Lockstep.registry)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args, settings) -> int:
    folder = Path(args.folder)
    if not (folder / "environment.yml").is_file():
        raise LockstepError(
            f"{folder} has no environment.yml; pass the hub image's folder "
            "(images/hub in a lockstep checkout)")

    def progress(message: str) -> None:
        print(f"lockstep build-hub: {message}", file=sys.stderr, flush=True)

    if args.lock:
        lock_hub(folder, settings, progress=progress)
    result = build_hub(folder, settings, registry=args.registry, progress=progress,
                       epoch=_epoch())
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    else:
        print(result.reference)
    return 0
