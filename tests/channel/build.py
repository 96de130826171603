"""Build the offline conda channel the tests solve and install from.

Usage::

    python tests/channel/build.py OUT_DIR [--jupyter]   # build into OUT_DIR
    python tests/channel/build.py --cached [--jupyter]  # build (or reuse) the cache; print it

The channel always holds the tiny solver fixtures (:mod:`.tiny`), a relocatable
``python`` 3.11.7 with ``python_abi``, ``pip`` (from CPython's bundled wheel),
``libstdcxx-ng`` and the multi-platform and CUDA fixtures (:mod:`.platforms`: ``zeta`` for
every platform, ``cudatoy`` needing ``__cuda``); ``--jupyter`` adds every pinned wheel of
``wheels.lock`` converted to a conda package, plus the ``jupyterhub-singleuser``
metapackage. Every subdir
(``noarch``, ``linux-64``, ``osx-arm64``, ...) gets a ``repodata.json`` written by rattler's
indexer.

Guarantees: package archives are byte-identical across builds of the same inputs;
:func:`cached_channel` never returns a half-built channel (it builds in a temporary folder
and renames it into place). rattler is only ever run in a subprocess, because py-rattler
0.28 can crash at interpreter shutdown.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make this folder the `channel` package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import channel  # noqa: F401

    __package__ = "channel"

import zstandard

from .conda_pkg import PackageSpec, write_conda
from .platforms import platform_specs
from .python_pkg import PY_VERSION, SOURCE_PREFIX, libstdcxx_spec, python_specs
from .tiny import tiny_specs
from .wheel_convert import convert_and_write, convert_wheel, wheel_meta
from .wheels import CACHE_DIR, LOCK_FILE, ensure_wheels, parse_lock

CHANNELS_DIR = Path.home() / ".cache" / "lockstep" / "channels"
_HERE = Path(__file__).resolve().parent
#: The modules whose code shapes the channel's bytes (fixtures and helpers excluded).
_SOURCES = (
    "build.py",
    "conda_pkg.py",
    "elf.py",
    "platforms.py",
    "python_pkg.py",
    "tiny.py",
    "wheel_convert.py",
    "wheels.py",
)
_INDEX_SCRIPT = """
import asyncio, os, sys
from rattler.index import index_fs
asyncio.run(index_fs(sys.argv[1], write_zst=False, write_shards=False, force=True))
os._exit(0)
"""


def cache_key(jupyter: bool) -> str:
    """Return ``base-<sha>`` or ``jupyter-<sha>``: a hash of every input of the build."""
    digest = hashlib.sha256()
    for path in [*(_HERE / name for name in _SOURCES), LOCK_FILE]:
        digest.update(f"{path.name}\0".encode() + path.read_bytes() + b"\0")
    digest.update(
        f"python={PY_VERSION} zstandard={zstandard.__version__} jupyter={jupyter}".encode()
    )
    return f"{'jupyter' if jupyter else 'base'}-{digest.hexdigest()[:16]}"


def jupyter_metapackage(jupyterhub_version: str) -> PackageSpec:
    """``jupyterhub-singleuser``: what conda-forge calls the single-user server bundle."""
    return PackageSpec(
        name="jupyterhub-singleuser",
        version=jupyterhub_version,
        build="0",
        subdir="noarch",
        noarch="generic",
        depends=(f"jupyterhub =={jupyterhub_version}", "jupyter-server"),
        license="BSD-3-Clause",
        summary="JupyterHub single-user server (metapackage)",
    )


def index_channel(channel_dir: Path) -> None:
    """Write ``repodata.json`` for every subdir of ``channel_dir`` with rattler (subprocess)."""
    (channel_dir / "noarch").mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-c", _INDEX_SCRIPT, str(channel_dir)], capture_output=True, text=True
    )
    if result.returncode != 0 or not (channel_dir / "noarch" / "repodata.json").exists():
        raise RuntimeError(
            f"indexing {channel_dir} with rattler failed (exit {result.returncode}):\n"
            f"{result.stderr[-2000:]}\nIs py-rattler==0.28.0 installed in {sys.executable}?"
        )


def _jupyter_packages(out_dir: Path, wheel_cache: Path) -> list[str]:
    wheels = ensure_wheels(parse_lock(LOCK_FILE.read_text()), wheel_cache)
    metas = {m.name: m for m in map(wheel_meta, wheels)}
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        names = list(
            pool.map(convert_and_write, wheels, [metas] * len(wheels), [out_dir] * len(wheels))
        )
    names.append(write_conda(jupyter_metapackage(metas["jupyterhub"].version), out_dir).name)
    return names


def build_channel(out_dir: Path, jupyter: bool, wheel_cache: Path = CACHE_DIR) -> Path:
    """Build the channel into ``out_dir`` (created; existing packages are overwritten).

    Parameters
    ----------
    out_dir:
        Channel root; ``linux-64/`` and ``noarch/`` are made inside it.
    jupyter:
        Also convert the pinned wheels (jupyterhub-singleuser, ipykernel, numpy...).
    wheel_cache:
        Where pinned wheels are cached between builds.

    Returns
    -------
    Path
        ``out_dir``, ready to use as ``file://{out_dir}``.
    """
    out_dir = Path(out_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="lockstep-channel-") as tmp:
        specs = [
            *tiny_specs(),
            *platform_specs(),
            *python_specs(Path(tmp), SOURCE_PREFIX),
            libstdcxx_spec(),
        ]
        pip_wheel = next((SOURCE_PREFIX / "lib/python3.11/ensurepip/_bundled").glob("pip-*.whl"))
        specs.append(convert_wheel(pip_wheel, {}))
        for spec in specs:
            write_conda(spec, out_dir)
    if jupyter:
        _jupyter_packages(out_dir, wheel_cache)
    index_channel(out_dir)
    return out_dir


def cached_dir(final: Path, build) -> Path:
    """``final`` if it exists, else ``build(tmp)`` into a temporary sibling folder renamed
    into place, so a crash mid-build never leaves a folder that looks complete; when two
    processes race, the first rename wins and the loser's copy is deleted."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        build(tmp)
        tmp.chmod(0o755)  # mkdtemp made it private; the channel is shared, read-only data
        os.rename(tmp, final)
    except OSError:
        if not final.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def cached_channel(jupyter: bool, root: Path = CHANNELS_DIR) -> Path:
    """Return a built channel under ``root/<key>/``, building it when it is missing."""
    return cached_dir(root / cache_key(jupyter), lambda tmp: build_channel(tmp, jupyter))


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", nargs="?", type=Path, help="channel folder to build into")
    parser.add_argument("--jupyter", action="store_true", help="add the jupyter wheel set")
    parser.add_argument("--cached", action="store_true", help="build into ~/.cache and print it")
    args = parser.parse_args(argv)
    if (args.out_dir is None) == (not args.cached):
        parser.error("give OUT_DIR or --cached (not both)")
    start = time.monotonic()
    if args.cached:
        path = cached_channel(args.jupyter)
    else:
        path = build_channel(args.out_dir, args.jupyter)
    count = len(list(path.glob("*/*.conda")))
    print(f"{path}: {count} packages in {time.monotonic() - start:.1f}s", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
