"""Solve and install from a channel with py-rattler, as a SUBPROCESS-only script.

py-rattler 0.28 can crash at interpreter shutdown, so nothing in the test process may
import ``rattler``: tests call :func:`run` (or this file as a script), which starts a
fresh interpreter, prints one JSON line and leaves with ``os._exit``.

Usage::

    python tests/channel/rattler_run.py CHANNEL_DIR SPEC... [--prefix P] [--target-prefix T]

Output (stdout, one JSON object): ``{"ok": true, "records": [{"name", "version",
"build", "sha256", "url"}...]}`` or ``{"ok": false, "error": "<rattler message>",
"kind": "<exception class>"}``. With ``--prefix`` the solution is installed there; with
``--target-prefix`` it is installed for that prefix (placeholders and shebangs say
``T``) while the files land in ``--prefix`` (rattler's ``alternative_target_prefix``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

#: The virtual packages of a Debian bookworm (glibc 2.36) x86_64 host.
VIRTUAL_PACKAGES = (("__unix", "0", "0"), ("__linux", "5.10", "0"), ("__glibc", "2.36", "0"))


def run(
    channel: Path,
    specs: list[str],
    prefix: Path | None = None,
    target_prefix: str | None = None,
    cache_dir: Path | None = None,
) -> dict:
    """Run this script in a subprocess and return its JSON result.

    ``cache_dir`` is rattler's package cache (default: rattler's own, ``~/.cache/rattler``).
    """
    cmd = [sys.executable, __file__, str(channel), *specs]
    if cache_dir is not None:
        cmd += ["--cache-dir", str(cache_dir)]
    if prefix is not None:
        cmd += ["--prefix", str(prefix)]
    if target_prefix is not None:
        cmd += ["--target-prefix", target_prefix]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"rattler_run exited {proc.returncode} without a result:\n{proc.stderr}")
    return json.loads(lines[-1])


async def _solve_install(args: argparse.Namespace) -> list:
    import rattler
    from rattler import BuildString, GenericVirtualPackage, PackageName, Version

    virtual = [
        GenericVirtualPackage(PackageName(n), Version(v), BuildString(b))
        for n, v, b in VIRTUAL_PACKAGES
    ]
    records = await rattler.solve(
        sources=[Path(args.channel).resolve().as_uri()],
        specs=args.specs,
        platforms=["linux-64", "noarch"],
        virtual_packages=virtual,
        gateway=rattler.Gateway(cache_dir=args.cache_dir),
    )
    if args.prefix:
        await rattler.install(
            records,
            target_prefix=args.prefix,
            cache_dir=args.cache_dir,
            show_progress=False,
            alternative_target_prefix=args.target_prefix,
        )
    return records


def main() -> None:
    """Script entry point; always ends with ``os._exit``."""
    import asyncio

    parser = argparse.ArgumentParser()
    parser.add_argument("channel")
    parser.add_argument("specs", nargs="+")
    parser.add_argument("--prefix")
    parser.add_argument("--target-prefix")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    try:
        records = asyncio.run(_solve_install(args))
        out = {
            "ok": True,
            "records": sorted(
                (
                    {
                        "name": r.name.normalized,
                        "version": str(r.version),
                        "build": str(r.build),
                        "sha256": r.sha256.hex() if isinstance(r.sha256, bytes) else r.sha256,
                        "url": str(r.url),
                    }
                    for r in records
                ),
                key=lambda r: r["name"],
            ),
        }
    except Exception as exc:  # noqa: BLE001 - reported to the caller as data
        out = {"ok": False, "kind": type(exc).__name__, "error": str(exc)}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
