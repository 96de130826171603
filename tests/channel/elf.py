"""Thin wrappers around ``readelf``, ``ldd``, ``strip`` and ``patchelf`` (I/O only).

Used to make repackaged shared objects relocatable: bundle the non-glibc libraries a
file needs and point its RUNPATH at ``$ORIGIN``-relative folders, as conda does.
``patchelf`` comes from Debian (``apt-get install -y patchelf``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from .conda_pkg import BuildInputMissing

#: Sonames shipped by Debian bookworm's ``libc6`` (plus ``libgcc_s``, which ``libc6``
#: depends on): a rootfs with libc6 always has these, so they are never bundled.
GLIBC_SONAMES = frozenset(
    {
        "ld-linux-x86-64.so.2",
        "libBrokenLocale.so.1",
        "libanl.so.1",
        "libc.so.6",
        "libc_malloc_debug.so.0",
        "libdl.so.2",
        "libgcc_s.so.1",  # libgcc-s1: a Depends of libc6, so always present with it
        "libm.so.6",
        "libmvec.so.1",
        "libnsl.so.1",
        "libnss_compat.so.2",
        "libnss_dns.so.2",
        "libnss_files.so.2",
        "libnss_hesiod.so.2",
        "libpthread.so.0",
        "libresolv.so.2",
        "librt.so.1",
        "libthread_db.so.1",
        "libutil.so.1",
        "linux-vdso.so.1",
    }
)

_LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)\s+\(0x[0-9a-f]+\)\s*$")


def require_tools() -> None:
    """Fail with the install command when a needed binutils/patchelf tool is missing."""
    missing = [t for t in ("readelf", "ldd", "strip", "patchelf") if shutil.which(t) is None]
    if missing:
        raise BuildInputMissing(
            f"building the test channel needs {', '.join(missing)}; "
            "install them with `apt-get install -y patchelf binutils libc-bin`"
        )


def is_elf(data: bytes) -> bool:
    """True when ``data`` starts with the ELF magic number."""
    return data[:4] == b"\x7fELF"


def needed(path: Path) -> list[str]:
    """Return the DT_NEEDED sonames of ``path``."""
    out = subprocess.run(
        ["readelf", "-d", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)


def resolve(path: Path) -> dict[str, Path]:
    """Return ``{soname: file}`` for every library ``path`` loads, transitively (``ldd``)."""
    out = subprocess.run(["ldd", str(path)], check=True, capture_output=True, text=True).stdout
    found: dict[str, Path] = {}
    for line in out.splitlines():
        match = _LDD_LINE.match(line)
        if match is None:
            if "not found" in line:
                raise RuntimeError(f"{path}: {line.strip()}; install the Debian package for it")
            continue
        found[match.group(1)] = Path(match.group(2)).resolve()
    return found


def set_runpath(path: Path, runpath: str) -> None:
    """Set DT_RUNPATH of ``path`` (patched in place) to ``runpath``."""
    subprocess.run(["patchelf", "--set-rpath", runpath, str(path)], check=True)


def runpath(path: Path) -> str:
    """Return the current RUNPATH/RPATH of ``path`` ("" when none)."""
    out = subprocess.run(
        ["patchelf", "--print-rpath", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return out.strip()


def strip_debug(path: Path) -> None:
    """Remove debug sections from ``path`` in place (deterministic)."""
    subprocess.run(["strip", "--strip-debug", str(path)], check=True)
