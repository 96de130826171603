"""The ``lockstep`` command line: one sub-command per module in ``spawner.commands``.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func(args, settings) -> int``. This module only wires them together and turns a
``LockstepError`` into its message and exit code, never a traceback. A command whose
extra is not installed (``lockstep[docker]``, ``lockstep[build]``, ``lockstep[kube]``) stays
listed and, when run, says which extra to install.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from spawner.errors import LockstepError
from spawner.settings import load_settings

COMMANDS = (
    "lock",
    "install",
    "inspect",
    "sessions",
    "build",
    "build_hub",
    "prepull",
    "registry",
    "run",
    "deploy",
    "sbom",
    "promote",
    "approve",
    "rollback",
    "history",
    "verify",
    "audit",
    "model",
)


EXTRAS = {
    "docker": "docker", "dockerspawner": "docker",
    "rattler": "build", "conda_lock": "build", "conda_package_streaming": "build",
    "kubespawner": "kube", "kubernetes_asyncio": "kube",
}
"""Top-level module -> the ``lockstep[...]`` extra that installs it."""


def _missing_extra(sub, name: str, exc: ModuleNotFoundError) -> None:
    """Register ``name`` as a command that explains which extra is missing."""
    module = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(module)
    if extra is None:
        raise exc
    parser = sub.add_parser(name, add_help=False,
                            help=f"(needs: pip install 'lockstep[{extra}]')")
    parser.add_argument("rest", nargs=argparse.REMAINDER)

    def refuse(args, settings) -> int:
        raise LockstepError(
            f"'lockstep {name}' needs the Python package {module!r}, which this install lacks; "
            f"install it with: pip install 'lockstep[{extra}]'")

    parser.set_defaults(func=refuse)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lockstep",
        description="Locked, reproducible, promoted project environments for JupyterHub.",
    )
    parser.add_argument(
        "--config", metavar="FILE", help="lockstep_config.py to read (default: $LOCKSTEP_CONFIG "
        "or ./lockstep_config.py)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"spawner.commands.{name}")
        except ModuleNotFoundError as exc:
            _missing_extra(sub, name, exc)
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        return int(args.func(args, settings) or 0)
    except LockstepError as exc:
        print(f"lockstep {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
