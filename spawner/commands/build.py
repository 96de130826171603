"""``lockstep build environments/<project>``: build the project's lock into an image.

Progress goes to stderr (a live line on a terminal, one line per step otherwise:
``spawner.progress``); the last stdout line is the image reference by digest
(``127.0.0.1:5000/lockstep/<project>@sha256:...``), or with ``--json`` one JSON object and
no progress at all.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from spawner.errors import LockstepError
from spawner.image.build import build_image
from spawner.progress import Progress


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "build",
        help="build a project's locked environment into an image and push it",
        description="Install environments/<project>/conda-lock.yml for /opt/env, write "
        "deterministic layers (one per package) on the lockstep base image and push the "
        "image to the registry, tagged with the first stage. Nothing is pushed when the "
        "registry already has the image for this lock and base.",
    )
    parser.add_argument("project_dir", metavar="PROJECT_DIR", help="e.g. environments/iris")
    parser.add_argument(
        "--registry",
        metavar="HOST[:PORT][/NS]",
        help="registry to push to (default: c.Lockstep.registry)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def _epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH", "0") or "0"
    if not value.isdigit():
        raise LockstepError(f"SOURCE_DATE_EPOCH={value!r} must be whole seconds, e.g. 0")
    return int(value)


def run(args, settings) -> int:
    project_dir = Path(args.project_dir)
    if not project_dir.is_dir():
        raise LockstepError(f"{project_dir} is not a folder; pass environments/<project>")

    progress = Progress(sys.stderr, quiet=args.json, prefix="lockstep build: ")
    result = build_image(
        project_dir, settings, registry=args.registry, progress=progress, epoch=_epoch()
    )
    progress.close()
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
        return 0
    if result.noop:
        print("nothing to push: the registry already has this image", file=sys.stderr)
    else:
        print(
            f"pushed {result.layers} layers, {result.bytes_uploaded} bytes uploaded "
            f"(tag {result.tag})",
            file=sys.stderr,
        )
    print(result.reference)
    return 0
