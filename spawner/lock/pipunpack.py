"""Unpack one verified wheel into a prefix, and take a lockstep-installed one out again.

Guarantees: members are written in sorted order with modes 0644/0755 only; ``#!python``
script shebangs and console-script wrappers point at ``target_prefix``; ``INSTALLER`` is
``lockstep``; ``RECORD`` lists what was written (paths relative to ``site-packages``, no
host paths); no ``direct_url.json``. A member that would leave the prefix, overwrite a file
already there (a conda package's) or land in the interpreter's own files is refused
before anything of that wheel is written. Another version of the same distribution that
lockstep installed is taken out first: deleted, or moved into a folder the caller names
(``aside``) so ``put_back`` can return it byte for byte when the caller's install fails.
Taking out follows ``RECORD`` and never a link out of the prefix (a link is moved or
removed itself). It writes only inside the prefix and ``aside``; it fetches nothing and
must not import rattler or conda-lock.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import os
import posixpath
import re
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path

from spawner.errors import LockstepError

INSTALLER = "lockstep"
SCRIPT = """#!{python}
import re
import sys
from {module} import {attr}
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit({call}())
"""


def _scheme_path(member: str, data_dir: str, *, site: str, python: str, dist: str) -> str:
    if not member.startswith(data_dir + "/"):
        return f"{site}/{member}"
    scheme, _, rest = member[len(data_dir) + 1 :].partition("/")
    return {
        "purelib": f"{site}/{rest}",
        "platlib": f"{site}/{rest}",
        "scripts": f"bin/{rest}",
        "data": rest,
        "headers": f"include/python{python}/{dist}/{rest}",
    }.get(scheme, f"\0{scheme}")


def _check_target(rel: str, *, prefix: Path, python: str, label: str, member: str) -> None:
    norm = posixpath.normpath(rel)
    std = f"lib/python{python}/"
    if (
        "\0" in rel
        or norm.startswith(("/", "../"))
        or norm == ".."
        or (norm.startswith(std) and not norm.startswith(std + "site-packages/"))
        or norm.startswith("bin/python")
        or norm.startswith("conda-meta/")
    ):
        raise LockstepError(
            f"pip package {label}: wheel member {member!r} would be written to {rel!r}, "
            "outside what a wheel may change; nothing of it was installed. Use another "
            "version of the package or its conda package."
        )
    if (prefix / norm).exists() or (prefix / norm).is_symlink():
        raise LockstepError(
            f"pip package {label}: its file {norm} is already in the environment (installed "
            "by a conda package), and lockstep never overwrites a conda package's files. "
            f"Remove {label} from the pip section if conda provides it, or pin another version."
        )


def unpack(
    wheel: Path,
    prefix: Path,
    *,
    python: str,
    target_prefix: str,
    label: str,
    extra: Mapping[str, bytes] | None = None,
    aside: Path | None = None,
) -> str:
    """Install one verified wheel (see the module guarantees); its dist-info folder name.
    ``extra``: more files for that folder (name -> bytes), listed in ``RECORD``. Another
    version lockstep installed is removed first, or moved under ``aside`` when given."""
    site = f"lib/python{python}/site-packages"
    shebang = f"{target_prefix.rstrip('/')}/bin/python{python}"
    with zipfile.ZipFile(wheel) as archive:
        names = sorted(n for n in archive.namelist() if not n.endswith("/"))
        info_dir = next(
            (n.split("/")[0] for n in names if re.match(r"^[^/]+\.dist-info/WHEEL$", n)), None
        )
        if info_dir is None:
            raise LockstepError(f"pip package {label}: {wheel.name} has no .dist-info/WHEEL.")
        data_dir = info_dir[: -len(".dist-info")] + ".data"
        dist = info_dir.split("-")[0]
        if installed(prefix / site, info_dir, dist, aside):
            return info_dir
        plan = []
        for member in names:
            if member in (
                f"{info_dir}/RECORD",
                f"{info_dir}/INSTALLER",
                f"{info_dir}/direct_url.json",
                f"{info_dir}/REQUESTED",
            ):
                continue
            rel = _scheme_path(member, data_dir, site=site, python=python, dist=dist)
            _check_target(rel, prefix=prefix, python=python, label=label, member=member)
            plan.append((member, posixpath.normpath(rel)))
        written: list[tuple[str, bytes]] = []
        for member, rel in plan:
            data = archive.read(member)
            executable = bool((archive.getinfo(member).external_attr >> 16) & 0o111)
            if rel.startswith("bin/"):
                if data.startswith(b"#!python"):
                    rest = data.split(b"\n", 1)[1] if b"\n" in data else b""
                    data = b"#!" + shebang.encode() + b"\n" + rest
                executable = True
            written.append((rel, data))
            _write(prefix / rel, data, executable)
        entry_points = (
            archive.read(f"{info_dir}/entry_points.txt").decode()
            if (f"{info_dir}/entry_points.txt" in names)
            else ""
        )
    for rel, data in _scripts(entry_points, shebang=shebang):
        _check_target(rel, prefix=prefix, python=python, label=label, member=rel)
        written.append((rel, data))
        _write(prefix / rel, data, True)
    files = {"INSTALLER": (INSTALLER + "\n").encode(), **dict(extra or {})}
    for name, data in sorted(files.items()):
        written.append((f"{site}/{info_dir}/{name}", data))
        _write(prefix / f"{site}/{info_dir}/{name}", data, False)
    _write(prefix / f"{site}/{info_dir}/RECORD", _record(written, site, info_dir), False)
    return info_dir


def installed(site: Path, info_dir: str, dist: str, aside: Path | None = None) -> bool:
    """True when this very wheel is installed; removes another version lockstep installed
    (moves its files under ``aside`` when given, so a failed call can put them back)."""
    for other in sorted(site.glob(f"{dist}-*.dist-info")):
        if (other / "INSTALLER").is_file() and (other / "INSTALLER").read_text().strip() == (
            INSTALLER
        ):
            if other.name == info_dir:
                return True
            remove(site, other.name, aside)
    return False


def remove(site: Path, info_dir: str, aside: Path | None = None) -> None:
    """Delete the files a lockstep-installed distribution's ``RECORD`` lists (those inside
    the prefix; a link is removed itself, never followed); with ``aside``, move each to
    ``aside/<path in the prefix>`` instead."""
    record = site / info_dir / "RECORD"
    if not record.is_file():
        return
    prefix = site.parent.parent.parent.resolve()
    folders = {record.parent}
    for line in [*record.read_text().splitlines(), f"{info_dir}/RECORD,,"]:
        target = site / line.split(",", 1)[0]
        place = target.parent.resolve() / target.name  # the entry itself, not its link
        inside = target.name not in ("", ".", "..") and place.is_relative_to(prefix)
        if inside and target.resolve().is_relative_to(prefix):
            _drop(place, prefix, aside)
            folders.add(target.parent)
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
        while folder.resolve() != prefix and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a folder the distribution's files alone filled
            folder = folder.parent


def _drop(place: Path, prefix: Path, aside: Path | None) -> None:
    if aside is None or not (place.is_file() or place.is_symlink()):
        place.unlink(missing_ok=True)
        return
    kept = aside / place.relative_to(prefix)
    if kept.exists() or kept.is_symlink():
        place.unlink()  # listed twice: the first copy is the one to put back
        return
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(place, kept)  # a rename, or a copy of the file or link itself


def put_back(aside: Path, site: Path) -> None:
    """Return every file ``remove`` set aside to its place in the prefix."""
    if not aside.is_dir():
        return
    prefix = site.parent.parent.parent.resolve()
    for kept in sorted(p for p in aside.rglob("*") if p.is_file() or p.is_symlink()):
        place = prefix / kept.relative_to(aside)
        place.parent.mkdir(parents=True, exist_ok=True)
        if place.exists() or place.is_symlink():
            place.unlink()
        shutil.move(kept, place)


def _scripts(text: str, *, shebang: str) -> list[tuple[str, bytes]]:
    if not text.strip():
        return []
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # keep the script names' case
    parser.read_string(text)
    scripts = []
    for section in ("console_scripts", "gui_scripts"):
        for name, target in sorted(parser.items(section) if parser.has_section(section) else []):
            match = re.match(r"^\s*([\w.]+)\s*:\s*([\w.]+)", target)
            if not match or "/" in name or name.startswith("."):
                continue
            attr = match[2].split(".")[0]
            call = match[2]
            body = SCRIPT.format(python=shebang, module=match[1], attr=attr, call=call)
            scripts.append((f"bin/{name}", body.encode()))
    return scripts


def _write(path: Path, data: bytes, executable: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.lockstep-tmp")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o755 if executable else 0o644)
    os.replace(tmp, path)


def _record(written: list[tuple[str, bytes]], site: str, info_dir: str) -> bytes:
    lines = []
    for rel, data in sorted(written):
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{posixpath.relpath(rel, site)},sha256={digest},{len(data)}")
    lines.append(f"{info_dir}/RECORD,,")
    return ("\n".join(sorted(lines)) + "\n").encode()
