"""The rattler worker: ``python -m spawner.lock.worker`` solves and installs with py-rattler.

Protocol: one JSON request on stdin; JSON lines on stdout, each ``{"event": "progress",
"message": ...}`` or, last, ``{"event": "result", "ok": true, "result": {...}}`` /
``{"event": "result", "ok": false, "kind": ..., "message": ...}``. The process ends with
``os._exit`` because py-rattler 0.28 can crash while the interpreter shuts down.

This is the only module that imports rattler, and nothing imports this module: callers
use ``runner.run_worker``. It must not import conda-lock (slow) or print anything else to
stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import traceback
from pathlib import Path


def _emit(payload: dict) -> None:
    os.write(1, (json.dumps(payload) + "\n").encode())


def progress(message: str) -> None:
    _emit({"event": "progress", "message": message})


class Failure(Exception):
    """A failure the caller turns into a ``LockstepError`` of the given kind."""

    def __init__(self, kind: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.kind = kind
        self.extra = extra


def _record(record, platform: str) -> dict:
    return {
        "platform": platform,
        "name": record.name.normalized,
        "version": str(record.version),
        "build": str(record.build),
        "build_number": record.build_number,
        "subdir": str(record.subdir),
        "url": record.url,
        "channel": record.channel,
        "file_name": record.file_name,
        "sha256": record.sha256.hex() if record.sha256 else None,
        "md5": record.md5.hex() if record.md5 else None,
        "size": record.size,
        "depends": list(record.depends),
    }


async def solve(request: dict) -> dict:
    import rattler
    from rattler.exceptions import SolverError

    gateway = rattler.Gateway(cache_dir=request.get("cache_dir"))
    channels = [rattler.Channel(url) for url in request["channels"]]
    result: dict[str, list[dict]] = {}
    started = time.perf_counter()
    for job in request["jobs"]:
        platform = job["platform"]
        progress(f"solving for {platform}...")
        virtual = [
            rattler.GenericVirtualPackage(
                rattler.PackageName(name), rattler.Version(version), rattler.BuildString(build)
            )
            for name, version, build in job["virtual_packages"]
        ]
        specs = []
        for spec in job["specs"]:
            try:
                specs.append(rattler.MatchSpec(spec, strict=False))
            except Exception as exc:  # noqa: BLE001 - InvalidMatchSpecError
                raise Failure("spec", f"{spec!r}: {exc}", platform=platform) from None
        try:
            records = await rattler.solve(
                sources=channels,
                specs=specs,
                gateway=gateway,
                platforms=[rattler.Platform(platform), rattler.Platform("noarch")],
                virtual_packages=virtual,
            )
        except SolverError as exc:
            raise Failure("unsolvable", str(exc), platform=platform) from None
        except Exception as exc:  # noqa: BLE001 - rattler raises many kinds for channels
            raise Failure("channel", f"{type(exc).__name__}: {exc}", platform=platform) from None
        result[platform] = [_record(r, platform) for r in records]
    return {"platforms": result, "seconds": time.perf_counter() - started}


async def install(request: dict) -> dict:
    import rattler

    started = time.perf_counter()
    progress(f"linking {len(request['packages'])} packages into {request['prefix']}...")
    try:
        records = [_archive_record(rattler, p) for p in request["packages"]]
        await rattler.install(
            records,
            target_prefix=request["prefix"],
            cache_dir=request["cache_dir"],
            platform=rattler.Platform(request["platform"]),
            alternative_target_prefix=request.get("target_prefix"),
            execute_link_scripts=False,
            show_progress=False,
        )
    except Exception as exc:  # noqa: BLE001 - InstallerError and I/O errors alike
        raise Failure("install", f"{type(exc).__name__}: {exc}") from None
    return {"installed": len(records), "seconds": time.perf_counter() - started}


def _archive_record(rattler, package: dict):
    """A record from a verified archive's ``info/index.json`` and the lock's hashes.

    The archive's sha256 was checked by the caller, so it is not hashed again here.
    """
    index = rattler.IndexJson.from_package_archive(package["archive"])
    record = rattler.PackageRecord(
        name=index.name,
        version=index.version,
        build=index.build,
        build_number=index.build_number,
        subdir=index.subdir,
        arch=index.arch,
        platform=index.platform,
        noarch=index.noarch,
        depends=index.depends,
        constrains=index.constrains,
        sha256=bytes.fromhex(package["sha256"]),
        md5=bytes.fromhex(package["md5"]) if package.get("md5") else None,
        size=os.path.getsize(package["archive"]),
        features=index.features,
        license=index.license,
        license_family=index.license_family,
        python_site_packages_path=index.python_site_packages_path,
    )
    archive = package["archive"]
    return rattler.RepoDataRecord(
        record, os.path.basename(archive), Path(archive).as_uri(), package["channel"]
    )


OPERATIONS = {"solve": solve, "install": install}


def main() -> int:
    try:
        request = json.loads(sys.stdin.read())
        operation = OPERATIONS[request["op"]]
        result = asyncio.run(operation(request))
        _emit({"event": "result", "ok": True, "result": result})
        return 0
    except Failure as exc:
        _emit({"event": "result", "ok": False, "kind": exc.kind, "message": str(exc), **exc.extra})
        return 1
    except BaseException as exc:  # noqa: BLE001 - report everything, then _exit
        _emit(
            {
                "event": "result",
                "ok": False,
                "kind": "crash",
                "message": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        )
        return 3


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
