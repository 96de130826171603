"""``lockstep registry start|stop|status``: the local registry on 127.0.0.1:5000.

Runs Debian's ``docker-registry`` with storage under ``<data_dir>/registry``; ``start`` is
idempotent and returns once ``/v2/`` answers.
"""

from __future__ import annotations

import json

from spawner.image import localregistry


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "registry",
        help="start, stop or check the local image registry",
        description="Manage the local OCI registry (docker-registry) that builds push to. "
        "Storage, config, pid file and log live in <data_dir>/registry.",
    )
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument(
        "--address",
        default=localregistry.DEFAULT_ADDR,
        metavar="HOST:PORT",
        help=f"address to serve on (default {localregistry.DEFAULT_ADDR})",
    )
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.set_defaults(func=run)


def run(args, settings) -> int:
    root = settings.data_path("registry")
    if args.action == "start":
        state = localregistry.start(root, args.address)
    elif args.action == "stop":
        stopped = localregistry.stop(root, args.address)
        state = localregistry.status(root, args.address)
        if not stopped and not args.json:
            print("no registry started by lockstep was running")
    else:
        state = localregistry.status(root, args.address)
    if args.json:
        print(json.dumps(state.__dict__, sort_keys=True))
    else:
        where = f"pid {state.pid}" if state.pid else "not started by lockstep"
        print(
            f"registry {state.address}: {'running' if state.running else 'stopped'} "
            f"({where}; storage {state.root}/storage)"
        )
    return 0 if args.action != "status" or state.running else 1
