"""Convert a PyPI wheel into a linux-64 conda package for CPython 3.11.

Mapping (what tests may rely on):

* importable files go to ``lib/python3.11/site-packages/`` exactly as the wheel has them
  (bundled ``*.libs/`` folders included); ``.data/scripts`` go to ``bin/``, ``.data/data``
  to the prefix root, ``.data/headers`` to ``include/python3.11/<name>/``.
* every ``console_scripts``/``gui_scripts`` entry point becomes ``bin/<name>`` with a
  ``#!<placeholder>/bin/python`` shebang (``file_mode: text``), which conda and rattler
  rewrite to the install prefix (or the alternative target prefix).
* ``depends`` is ``python >=3.11,<3.12``, ``python_abi 3.11.* *_cp311`` and the wheel's
  ``Requires-Dist`` evaluated for CPython 3.11 on linux x86_64, with ``pkg[extra]``
  expanded into the extra's requirements; names map PyPI -> conda by
  ``packaging.utils.canonicalize_name`` (lowercase, ``_`` and ``.`` become ``-``).
* ``info/about.json`` ``license`` is ``License-Expression``, else a short ``License``,
  else the last ``License ::`` classifier, else ``""``.
* shared objects needing ``libstdc++.so.6`` or ``libz.so.1`` (not in the wheel, not in
  glibc) get ``$PREFIX/lib`` appended to their RUNPATH and a dependency on the package
  that ships the library.

Everything here is pure except :func:`convert_wheel`, which runs ``patchelf`` on copies
of the few shared objects that need it.
"""

from __future__ import annotations

import configparser
import posixpath
import tempfile
import zipfile
from dataclasses import dataclass
from email.parser import BytesParser
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from . import elf
from .conda_pkg import PLACEHOLDER, PackageSpec, PkgFile, write_conda
from .python_pkg import ABI_SPEC

SITE = "lib/python3.11/site-packages"
PYTHON_SPEC = "python >=3.11,<3.12"
BUILD = "py311_0"
MARKER_ENV = {
    "implementation_name": "cpython",
    "implementation_version": "3.11.7",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": "3.11.7",
    "python_version": "3.11",
    "sys_platform": "linux",
}
#: Libraries that wheels expect from the system, and the conda package that ships them.
EXTERNAL_LIBS = {"libstdc++.so.6": "libstdcxx-ng", "libz.so.1": "python"}


@dataclass(frozen=True)
class WheelMeta:
    """What conversion needs from a wheel's METADATA."""

    name: str
    version: str
    requires: tuple[str, ...]
    license: str
    summary: str


def conda_name(pypi_name: str) -> str:
    """Map a PyPI name to its conda name: ``Jupyter_Server`` -> ``jupyter-server``."""
    return canonicalize_name(pypi_name)


def read_meta(metadata: bytes) -> WheelMeta:
    """Parse a wheel's ``METADATA`` bytes."""
    msg = BytesParser().parsebytes(metadata)

    def field(key: str) -> str:
        return str(msg.get(key) or "").strip()

    license = field("License-Expression")
    raw = field("License")
    if not license and raw and "\n" not in raw and len(raw) <= 80:
        license = raw
    if not license:
        classifiers = [
            str(c) for c in msg.get_all("Classifier") or [] if c.startswith("License ::")
        ]
        license = classifiers[-1].split("::")[-1].strip() if classifiers else ""
    return WheelMeta(
        name=conda_name(field("Name")),
        version=field("Version"),
        requires=tuple(str(r) for r in msg.get_all("Requires-Dist") or ()),
        license=license,
        summary=field("Summary"),
    )


def _applies(req: Requirement, extra: str) -> bool:
    return req.marker is None or Marker(str(req.marker)).evaluate({**MARKER_ENV, "extra": extra})


def depends(meta: WheelMeta, metas: dict[str, WheelMeta]) -> list[str]:
    """Return conda ``depends`` for ``meta``; ``metas`` (by conda name) expands extras."""
    specs: set[str] = {PYTHON_SPEC, ABI_SPEC}
    todo = [(req, "") for req in map(Requirement, meta.requires)]
    seen: set[tuple[str, str]] = set()
    while todo:
        req, extra = todo.pop()
        if not _applies(req, extra):
            continue
        name = conda_name(req.name)
        specs.add(f"{name} {req.specifier}".strip() if str(req.specifier) else name)
        for wanted in sorted(req.extras):
            if (name, wanted) in seen or name not in metas:
                continue
            seen.add((name, wanted))
            todo += [(r, wanted) for r in map(Requirement, metas[name].requires) if r.marker]
    return sorted(specs)


def _dist_info(names: list[str]) -> str:
    tops = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
    if len(tops) != 1:
        raise ValueError(f"expected one .dist-info folder in the wheel, found {sorted(tops)}")
    return tops.pop()


def target_path(name: str, data_dir: str, project: str) -> str:
    """Map a path inside a wheel to its path in the conda prefix."""
    if not name.startswith(data_dir + "/"):
        return f"{SITE}/{name}"
    scheme, _, rest = name[len(data_dir) + 1 :].partition("/")
    return {
        "purelib": f"{SITE}/{rest}",
        "platlib": f"{SITE}/{rest}",
        "scripts": f"bin/{rest}",
        "data": rest,
        "headers": f"include/python3.11/{project}/{rest}",
    }[scheme]


def console_script(target: str) -> bytes:
    """Return a ``bin/`` launcher for the entry point ``module:attr`` (pip's template)."""
    module, _, attr = target.partition(":")
    attr = attr.split("[")[0].strip()
    return (
        f"#!{PLACEHOLDER}/bin/python\n"
        "# -*- coding: utf-8 -*-\n"
        "import re\nimport sys\n"
        f"from {module.strip()} import {attr.split('.')[0]}\n"
        "if __name__ == '__main__':\n"
        "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
        f"    sys.exit({attr}())\n"
    ).encode()


def _scripts(entry_points: bytes) -> list[PkgFile]:
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(entry_points.decode())
    files = []
    for section in ("console_scripts", "gui_scripts"):
        if parser.has_section(section):
            for name, target in sorted(parser.items(section)):
                files.append(PkgFile(f"bin/{name}", console_script(target), 0o755, has_prefix=True))
    return files


def _fix_script(data: bytes) -> tuple[bytes, bool]:
    if data.startswith(b"#!python"):
        return b"#!" + PLACEHOLDER.encode() + b"/bin/python" + data[len(b"#!python") :], True
    return data, False


def _patch_elf(path: str, data: bytes, own: set[str], workdir: Path) -> tuple[bytes, set[str]]:
    """Add ``$PREFIX/lib`` to the RUNPATH of a shared object that needs a system library."""
    tmp = workdir / "obj.so"
    tmp.write_bytes(data)
    external = {n for n in elf.needed(tmp) if n not in elf.GLIBC_SONAMES and n not in own}
    unknown = external - EXTERNAL_LIBS.keys()
    if unknown:
        raise RuntimeError(f"{path} needs {sorted(unknown)}: add them to EXTERNAL_LIBS")
    if not external:
        return data, set()
    up = posixpath.relpath("lib", posixpath.dirname(path))
    old = elf.runpath(tmp)
    elf.set_runpath(tmp, ":".join(p for p in (old, f"$ORIGIN/{up}") if p))
    return tmp.read_bytes(), {EXTERNAL_LIBS[n] for n in external}


def convert_wheel(wheel: Path, metas: dict[str, WheelMeta]) -> PackageSpec:
    """Return the conda package for ``wheel``; ``metas`` maps conda name -> metadata."""
    with zipfile.ZipFile(wheel) as zf, tempfile.TemporaryDirectory() as tmp:
        names = sorted(n for n in zf.namelist() if not n.endswith("/"))
        dist_info = _dist_info(names)
        meta = read_meta(zf.read(f"{dist_info}/METADATA"))
        data_dir = dist_info[: -len(".dist-info")] + ".data"
        own = {posixpath.basename(n) for n in names if ".so" in posixpath.basename(n)}
        files, extra_deps = [], set()
        for name in names:
            data, mode = zf.read(name), (zf.getinfo(name).external_attr >> 16) & 0o777
            path = target_path(name, data_dir, meta.name)
            has_prefix = False
            if path.startswith("bin/"):
                data, has_prefix = _fix_script(data)
                mode = 0o755
            elif elf.is_elf(data):
                data, deps = _patch_elf(path, data, own, Path(tmp))
                extra_deps |= deps
                mode = 0o755
            files.append(PkgFile(path, data, mode or 0o644, has_prefix=has_prefix))
        files.append(PkgFile(f"{SITE}/{dist_info}/INSTALLER", b"conda\n"))
        if f"{dist_info}/entry_points.txt" in names:
            files += _scripts(zf.read(f"{dist_info}/entry_points.txt"))
    clashes = sorted({f.path for f in files if [g.path for g in files].count(f.path) > 1})
    if clashes:
        raise ValueError(f"{wheel.name}: two files map to {clashes}; rename one in the mapping")
    return PackageSpec(
        name=meta.name,
        version=meta.version,
        build=BUILD,
        subdir="linux-64",
        files=tuple(sorted(files, key=lambda f: f.path)),
        depends=tuple(sorted(set(depends(meta, metas)) | (extra_deps - {"python"}))),
        license=meta.license,
        summary=meta.summary,
    )


def wheel_meta(wheel: Path) -> WheelMeta:
    """Read only the METADATA of ``wheel``."""
    with zipfile.ZipFile(wheel) as zf:
        return read_meta(zf.read(f"{_dist_info(zf.namelist())}/METADATA"))


def convert_and_write(wheel: Path, metas: dict[str, WheelMeta], channel_dir: Path) -> str:
    """Convert ``wheel`` and write it into ``channel_dir``; return the package file name.

    A top-level function so that a process pool can run it.
    """
    return write_conda(convert_wheel(wheel, metas), channel_dir).name
