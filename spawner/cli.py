"""The ``lockstep`` command line: one sub-command per module in ``spawner.commands``.

Each command module exposes ``register(subparsers)``, which adds its parser and sets
``func(args, settings) -> int``. This module only wires them together and turns a
``LockstepError`` into its message and exit code, never a traceback.
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
    "registry",
    "run",
    "deploy",
    "sbom",
    "promote",
    "rollback",
    "history",
    "verify",
    "audit",
)


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
        importlib.import_module(f"spawner.commands.{name}").register(sub)
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
