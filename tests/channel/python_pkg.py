"""Repackage this machine's shared-library CPython as a relocatable conda ``python``.

The source is pyenv's ``/root/.pyenv/versions/3.11.7`` (built with
``Py_ENABLE_SHARED=1``). The package guarantees:

* ``bin/python3.11`` finds ``lib/libpython3.11.so.1.0`` through ``RUNPATH=$ORIGIN/../lib``;
  ``python3`` and ``python`` are symlinks to it.
* Every non-glibc library the stdlib's extension modules need (OpenSSL, libffi, zlib,
  bz2, lzma, sqlite, ncurses, readline, uuid, gdbm, crypt...) is bundled in ``lib/`` and
  found through ``RUNPATH=$ORIGIN/../..`` (extension modules) or ``$ORIGIN`` (bundled
  libraries), so the interpreter runs on a rootfs that has nothing but ``libc6``.
* Text files that held the build prefix (sysconfigdata, the config ``Makefile``,
  pkg-config files, scripts) hold :data:`~.conda_pkg.PLACEHOLDER` instead and are marked
  ``file_mode: text``, so ``sysconfig`` reports the install prefix.
* Tests, IDLE, tkinter, ensurepip, ``__pycache__``, the static library and the contents
  of ``site-packages`` are left out; debug sections are stripped.

It reads the source install and runs ``strip``/``patchelf`` on copies in ``work_dir``;
the source install is never modified.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from . import elf
from .conda_pkg import PLACEHOLDER, BuildInputMissing, PackageSpec, PkgFile

SOURCE_PREFIX = Path("/root/.pyenv/versions/3.11.7")
PY_VERSION = "3.11.7"
PY_BUILD = "h_lockstep_0"
ABI_SPEC = "python_abi 3.11.* *_cp311"

_STDLIB = "lib/python3.11"
_BIN_FILES = ("python3.11", "python3.11-config", "pydoc3.11")
_BIN_LINKS = {
    "python": "python3.11",
    "python3": "python3.11",
    "python3-config": "python3.11-config",
    "pydoc3": "pydoc3.11",
}
_DROP_DIRS = frozenset(
    {
        "test",
        "idlelib",
        "tkinter",
        "turtledemo",
        "ensurepip",
        "lib2to3/tests",
        "ctypes/test",
        "distutils/tests",
        "unittest/test",
    }
)
_DROP_DYNLOAD = ("_test", "_ctypes_test", "_xxtestfuzz", "xxlimited", "_tkinter", "nis.")
_DROP_CONFIG = ("libpython3.11.a", "python.o")


def keep(rel: str) -> bool:
    """Return True when the prefix-relative path ``rel`` belongs in the package."""
    parts = PurePosixPath(rel).parts
    if "__pycache__" in parts:
        return False
    if parts[0] == "bin":
        return len(parts) == 2 and (parts[1] in _BIN_FILES or parts[1] in _BIN_LINKS)
    if parts[0] == "include":
        return True
    if parts[0] != "lib":
        return False
    if not rel.startswith(_STDLIB + "/"):
        return (len(parts) == 2 and parts[1].startswith("libpython")) or parts[1] == "pkgconfig"
    inner = rel[len(_STDLIB) + 1 :]
    if inner.startswith("site-packages/"):
        return inner == "site-packages/README.txt"
    if any(inner == d or inner.startswith(d + "/") for d in _DROP_DIRS):
        return False
    if inner.startswith("lib-dynload/"):
        return not inner[len("lib-dynload/") :].startswith(_DROP_DYNLOAD)
    if inner.startswith("config-"):
        return PurePosixPath(inner).name not in _DROP_CONFIG
    return True


def _select(source: Path) -> list[str]:
    picked = []
    for root, dirs, files in os.walk(source):
        for name in sorted(files + [d for d in dirs if (Path(root) / d).is_symlink()]):
            rel = (Path(root) / name).relative_to(source).as_posix()
            if keep(rel):
                picked.append(rel)
    return sorted(picked)


def _runpath_for(rel: str) -> str | None:
    if rel == "bin/python3.11":
        return "$ORIGIN/../lib"
    if rel.startswith(f"{_STDLIB}/lib-dynload/"):
        return "$ORIGIN/../.."
    if rel.startswith("lib/") and rel.count("/") == 1:
        return "$ORIGIN"
    return None


def _stage(source: Path, stage: Path) -> list[str]:
    """Copy the kept files to ``stage``, bundle libraries and patch ELF files."""
    rels = _select(source)
    bundled: dict[str, Path] = {}
    for rel in rels:
        src, dst = source / rel, stage / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
            continue
        shutil.copy2(src, dst)
        if elf.is_elf(src.read_bytes()[:4]):
            bundled.update(elf.resolve(src))
    for soname, lib in sorted(bundled.items()):
        if soname in elf.GLIBC_SONAMES or soname.startswith("libpython"):
            continue
        shutil.copyfile(lib, stage / "lib" / soname)
        (stage / "lib" / soname).chmod(0o755)
        rels.append(f"lib/{soname}")
    for rel in rels:
        path = stage / rel
        if path.is_symlink() or not elf.is_elf(path.read_bytes()[:4]):
            continue
        elf.strip_debug(path)
        runpath = _runpath_for(rel)
        if runpath is not None:
            elf.set_runpath(path, runpath)
    return sorted(rels)


def _pkg_file(stage: Path, rel: str, source_prefix: str) -> PkgFile:
    path = stage / rel
    if path.is_symlink():
        return PkgFile(rel, link_target=os.readlink(path))
    data = path.read_bytes()
    mode = 0o755 if os.access(path, os.X_OK) else 0o644
    old = source_prefix.encode()
    if old in data and not elf.is_elf(data):
        return PkgFile(rel, data.replace(old, PLACEHOLDER.encode()), mode, has_prefix=True)
    return PkgFile(rel, data, mode)


def python_specs(work_dir: Path, source: Path = SOURCE_PREFIX) -> list[PackageSpec]:
    """Return the ``python`` and ``python_abi`` packages built from ``source``.

    Parameters
    ----------
    work_dir:
        An empty scratch folder; the patched copies are made there.
    source:
        A CPython 3.11 prefix built with ``--enable-shared``.
    """
    if not (source / "bin/python3.11").exists():
        raise BuildInputMissing(
            f"no CPython 3.11 at {source}; install it with `pyenv install {PY_VERSION}` "
            "(configured with --enable-shared)"
        )
    elf.require_tools()
    stage = work_dir / "python"
    files = tuple(_pkg_file(stage, rel, str(source)) for rel in _stage(source, stage))
    python = PackageSpec(
        name="python",
        version=PY_VERSION,
        build=PY_BUILD,
        subdir="linux-64",
        files=files,
        constrains=(ABI_SPEC,),
        license="Python-2.0",
        summary="CPython repackaged relocatable for lockstep tests",
    )
    abi = PackageSpec(
        name="python_abi",
        version="3.11",
        build="8_cp311",
        subdir="linux-64",
        license="BSD-3-Clause",
        summary="Marker package for the CPython 3.11 ABI",
    )
    return [python, abi]


def libstdcxx_spec(source: Path = Path("/usr/lib/x86_64-linux-gnu/libstdc++.so.6")) -> PackageSpec:
    """Return ``libstdcxx-ng``: the GNU C++ runtime some manylinux wheels expect.

    ``libstdc++.so.6`` is not part of libc6, so wheels whose extension modules need it
    (pyzmq's bundled libzmq, numpy) depend on this package, as on conda-forge.
    """
    if not source.exists():
        raise BuildInputMissing(
            f"{source} is missing; install it with `apt-get install -y libstdc++6`"
        )
    return PackageSpec(
        name="libstdcxx-ng",
        version="12.2.0",
        build="h_lockstep_0",
        subdir="linux-64",
        files=(PkgFile("lib/libstdc++.so.6", source.read_bytes(), 0o755),),
        license="GPL-3.0-only WITH GCC-exception-3.1",
        summary="The GNU C++ runtime (from Debian bookworm's libstdc++6)",
    )
