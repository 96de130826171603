"""``lockstep model push|list|pin``: model files as OCI artifacts, promoted with the image.

``push PROJECT PATH...`` stores the files as one model (``spawner.models.artifact``) in the
project's repository by digest and prints ``REPO@sha256:...``; ``--pin`` also points the
first stage's model at it. ``pin PROJECT DIGEST`` points the first stage's model at a model
pushed before. ``lockstep promote`` then moves each stage's image and model together, and
``lockstep deploy`` serves the pair with the model mounted read-only. ``list PROJECT``
shows the models and the stages holding them. Exit 2 on any error, with the reason.
"""

from __future__ import annotations

import json
import sys

from spawner.models import store
from spawner.models.artifact import short


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "model",
        help="push, list and pin model files (OCI artifacts promoted with the image)",
        description="Store model files as an OCI artifact in the project's repository, "
        "list them, and pin one onto the first stage; promotion moves it with the image.",
    )
    sub = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    push = sub.add_parser("push", help="store files as a model; prints REPO@sha256:...")
    push.add_argument("project", help="project name")
    push.add_argument("paths", nargs="+", metavar="PATH",
                      help="files (named by their base name) or folders (their files, by "
                      "path under the folder)")
    push.add_argument("--pin", action="store_true",
                      help="also make it the first stage's model (what promotion moves on)")
    push.add_argument("--max-bytes", type=int, default=store.MAX_BYTES,
                      help=f"refuse models over this many bytes (default {store.MAX_BYTES})")
    push.add_argument("--json", action="store_true", help="print the result as JSON")
    push.set_defaults(func=run_push)
    listing = sub.add_parser("list", help="the project's models and the stages holding them")
    listing.add_argument("project", help="project name")
    listing.add_argument("--json", action="store_true", help="print the models as JSON")
    listing.set_defaults(func=run_list)
    pin = sub.add_parser("pin", help="make a pushed model the first stage's model")
    pin.add_argument("project", help="project name")
    pin.add_argument("digest", metavar="sha256:...", help="the model's digest")
    pin.set_defaults(func=run_pin)


def _project(settings, name: str) -> str:
    from spawner.project import load_project

    return load_project(settings.project_dir(name)).name


def run_push(args, settings) -> int:
    project = _project(settings, args.project)
    files = store.collect(args.paths, max_bytes=args.max_bytes)
    reference, model = store.push(settings, project, files)
    pinned = store.pin(settings, project, model.digest)[1] if args.pin else None
    if args.json:
        print(json.dumps({"reference": reference, "digest": model.digest, "bytes": model.size,
                          "files": [f.path for f in model.files], "pinned": pinned},
                         sort_keys=True))
        return 0
    print(reference)
    print(f"{len(model.files)} file(s), {model.size} bytes"
          + (f"; {pinned} now holds this model" if pinned else ""), file=sys.stderr)
    return 0


def run_list(args, settings) -> int:
    rows = store.list_models(settings, _project(settings, args.project))
    if args.json:
        print(json.dumps(rows, sort_keys=True))
        return 0
    if not rows:
        print(f"no models for {args.project}; push one with `lockstep model push "
              f"{args.project} PATH...`", file=sys.stderr)
    for row in rows:
        print(f"{row['digest']}  {row['files']:>4} file(s) {row['bytes']:>12} bytes  "
              f"{','.join(row['stages']) or '-'}")
    return 0


def run_pin(args, settings) -> int:
    project = _project(settings, args.project)
    before, first = store.pin(settings, project, args.digest)
    print(f"{first} of {project} now holds model {args.digest} (was {short(before)})")
    return 0
