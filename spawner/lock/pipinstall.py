"""Install a lock's ``manager: pip`` entries into a prefix: verified wheels, unpacked by us.

Guarantees: each wheel is fetched (through ``c.Lockstep.mirrors``) into
``<cache>/wheels/<sha256>/<file>`` and its sha256 checked against the lock before it is
opened; no pip or uv runs (no dependency resolution: the lock is complete). An sdist is
refused naming it, unless the caller passes the build sandbox (the site allows sdists):
then ``pipbuild`` builds it there from the environment's own backend, and the built
wheel is unpacked like any other, its origin in ``LOCKSTEP_BUILT.json``. Unpacking is
deterministic: members in sorted order, modes 0644/0755 only, ``#!python`` script
shebangs and console-script wrappers pointing at ``target_prefix`` (``/opt/env`` in
images), ``INSTALLER`` = ``lockstep``, a ``RECORD`` of what was written (paths relative
to ``site-packages``, no host paths) and no ``direct_url.json`` (index installs have
none). A wheel member that would leave the prefix,
overwrite a file already there (a conda package's), or land in the interpreter's own
files (``bin/python*``, the stdlib) is refused before anything of that wheel is written.
It must not import rattler or conda-lock.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import json
import os
import posixpath
import re
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from spawner.errors import LockstepError
from spawner.lock import pipbuild
from spawner.lock.fetch import ChecksumError, _copy, mirrored_url, sha256_of
from spawner.lock.pipwheels import SDIST_NAME_RE, WHEEL_NAME_RE
from spawner.lock.policy import SHA256_RE

INSTALLER = "lockstep"
BUILT = "LOCKSTEP_BUILT.json"
"""In a dist-info built here from an sdist: what was built from what (``_built_record``)."""
SCRIPT = """#!{python}
import re
import sys
from {module} import {attr}
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit({call}())
"""


@dataclass(frozen=True)
class Wheel:
    """One ``manager: pip`` entry of a lock."""

    name: str
    version: str
    url: str
    sha256: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1].split("#", 1)[0]


def fetch_wheel(
    wheel: Wheel, *, cache_dir: Path, mirrors: Mapping[str, str], sdist_ok: bool = False
) -> Path:
    """The verified wheel in the cache (fetched when missing or damaged); with ``sdist_ok``
    a source distribution (``.tar.gz``/``.zip``) is fetched the same way."""
    if not SHA256_RE.match(wheel.sha256 or ""):
        raise ChecksumError(
            f"pip package {wheel.name} {wheel.version}: the lock has no valid sha256 "
            f"({wheel.sha256!r}); re-create the lock with `lockstep lock`. Nothing was fetched."
        )
    if not WHEEL_NAME_RE.match(wheel.filename) and not (
        sdist_ok and SDIST_NAME_RE.match(wheel.filename)
    ):
        raise LockstepError(
            f"pip package {wheel.name} {wheel.version}: {wheel.url} is not a wheel (.whl); "
            "lockstep installs wheels only and does not build source distributions. Pin a "
            "version with a wheel for this platform, or use the conda package, and re-lock."
        )
    path = Path(cache_dir) / "wheels" / wheel.sha256 / wheel.filename
    if path.is_file() and sha256_of(path) == wheel.sha256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".part-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _copy(mirrored_url(wheel.url, mirrors), out, timeout=120,
                           label=f"pip package {wheel.name} {wheel.version}")
        if actual != wheel.sha256:
            raise ChecksumError(
                f"pip package {wheel.name} {wheel.version}: sha256 mismatch for {wheel.url}: "
                f"the lock expects {wheel.sha256}, the file has {actual}; nothing was "
                "installed. If the new file is intended, re-lock with `lockstep lock`."
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def python_version(prefix: Path) -> str:
    """``3.11`` from the prefix's ``conda-meta/python-*.json``."""
    for meta in sorted((Path(prefix) / "conda-meta").glob("python-[0-9]*.json")):
        match = re.match(r"^(\d+\.\d+)", json.loads(meta.read_text()).get("version", ""))
        if match:
            return match[1]
    raise LockstepError(
        f"{prefix}: has no python, so its pip packages cannot be installed; add python to "
        "the spec's conda dependencies and re-lock with `lockstep lock`."
    )


def install_wheels(
    wheels: Sequence[Wheel], prefix: Path, *, target_prefix: str, cache_dir: Path,
    mirrors: Mapping[str, str], sandbox: str | None = None,
) -> list[str]:
    """Unpack every wheel into ``prefix``; returns ``name==version`` for each.

    Source distributions (locked only where the site allows them) need ``sandbox`` (the
    site's ``build_sandbox``): their build backends are checked against what the
    environment will hold before anything is unpacked, then each is built into a wheel by
    ``pipbuild`` after the wheels are in, and unpacked with ``LOCKSTEP_BUILT.json`` (sdist
    URL and sha256, built wheel and its sha256) in its dist-info. A failed build removes
    the pip packages this call unpacked. None: an sdist is refused, naming it."""
    prefix = Path(prefix)
    version = python_version(prefix)
    binaries = [w for w in wheels if WHEEL_NAME_RE.match(w.filename)]
    sources = [w for w in wheels if not WHEEL_NAME_RE.match(w.filename)]
    if sources and sandbox is None:
        raise LockstepError(_sdists_refused(sources))
    paths = [fetch_wheel(w, cache_dir=cache_dir, mirrors=mirrors) for w in binaries]
    scratch = Path(cache_dir) / "sdist-builds"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=scratch) as tmp:
        planned = _plan_sources(sources, prefix, binaries, python=version, work=Path(tmp),
                                cache_dir=cache_dir, mirrors=mirrors)
        site = prefix / f"lib/python{version}/site-packages"
        kept = {p.name for p in site.glob("*.dist-info")}  # there before this call: kept
        done: list[str] = []
        try:
            for wheel, path in sorted(zip(binaries, paths, strict=True), key=lambda x: x[0].name):
                done.append(unpack(path, prefix, python=version, target_prefix=target_prefix,
                                   label=wheel.name))
            for wheel, root, system in planned:
                built = pipbuild.build_wheel(
                    root, system, label=f"{wheel.name} {wheel.version}", name=wheel.name,
                    version=wheel.version, prefix=prefix, target_prefix=target_prefix,
                    python=version, sandbox=sandbox, work=Path(tmp) / wheel.name)
                done.append(unpack(built, prefix, python=version, target_prefix=target_prefix,
                                   label=wheel.name, extra=_built_record(wheel, built, system)))
        except pipbuild.SdistBuildError:
            for info_dir in sorted(set(done) - kept):
                _remove(site, info_dir)
            raise
    return sorted(f"{w.name}=={w.version}" for w in wheels)


def _sdists_refused(sources: Sequence[Wheel]) -> str:
    shown = ", ".join(f"{w.name}=={w.version} ({w.filename})" for w in sources[:5])
    return (f"pip package(s) {shown} are source distributions; lockstep builds them only "
            "in the build sandbox where the site allows sdists (c.Lockstep.pip_allow_sdists"
            " = True). Pin versions with a wheel, or use the conda packages, and re-lock "
            "with `lockstep lock`. Nothing of the pip packages was installed.")


def refuse_locked_sdists(packages, source: str) -> None:
    """Refuse a lock whose pip entries include an sdist, on a site that does not allow them
    (``c.Lockstep.pip_allow_sdists``): checked before a build, even one already pushed."""
    found = [p for p in packages if p.manager == "pip"
             and SDIST_NAME_RE.match(str(p.url).split("#")[0].rsplit("/", 1)[-1])]
    if found:
        shown = ", ".join(f"{p.name}=={p.version}" for p in found[:5])
        raise LockstepError(
            f"{source}: pip package(s) {shown} are source distributions, which this site "
            "does not allow. Pin versions with a wheel, or use the conda packages, and "
            "re-lock with `lockstep lock`; or set c.Lockstep.pip_allow_sdists = True to "
            "build them in the build sandbox.")


def _plan_sources(sources, prefix, binaries, *, python, work, cache_dir, mirrors):
    """Fetch and unpack each sdist and check its backend is there; before any unpacking."""
    from spawner.lock.pipdeps import marker_env

    have = {**pipbuild.installed_dists(prefix), **{w.name: w.version for w in binaries}}
    planned = []
    for wheel in sorted(sources, key=lambda w: w.name):
        label = f"{wheel.name} {wheel.version}"
        path = fetch_wheel(wheel, cache_dir=cache_dir, mirrors=mirrors, sdist_ok=True)
        root = pipbuild.extract(path, work / wheel.name / "src", label=label)
        system = pipbuild.build_system(root)
        missing = pipbuild.missing_backend(system, have, env=marker_env("linux-64", python))
        if missing:
            raise pipbuild.refusal(label, missing, system)
        planned.append((wheel, root, system))
    return planned


def _built_record(wheel: Wheel, built: Path, system) -> dict[str, bytes]:
    record = {"sdist": {"url": wheel.url, "sha256": wheel.sha256},
              "wheel": {"file": built.name, "sha256": sha256_of(built)},
              "backend": system.backend, "source_date_epoch": pipbuild.EPOCH}
    return {BUILT: (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()}


def _scheme_path(member: str, data_dir: str, *, site: str, python: str, dist: str) -> str:
    if not member.startswith(data_dir + "/"):
        return f"{site}/{member}"
    scheme, _, rest = member[len(data_dir) + 1:].partition("/")
    return {
        "purelib": f"{site}/{rest}", "platlib": f"{site}/{rest}", "scripts": f"bin/{rest}",
        "data": rest, "headers": f"include/python{python}/{dist}/{rest}",
    }.get(scheme, f"\0{scheme}")


def _check_target(rel: str, *, prefix: Path, python: str, label: str, member: str) -> None:
    norm = posixpath.normpath(rel)
    std = f"lib/python{python}/"
    if ("\0" in rel or norm.startswith(("/", "../")) or norm == ".."
            or (norm.startswith(std) and not norm.startswith(std + "site-packages/"))
            or norm.startswith("bin/python") or norm.startswith("conda-meta/")):
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
    wheel: Path, prefix: Path, *, python: str, target_prefix: str, label: str,
    extra: Mapping[str, bytes] | None = None,
) -> str:
    """Install one verified wheel (see the module guarantees); its dist-info folder name.
    ``extra``: more files for that folder (name -> bytes), listed in ``RECORD``."""
    site = f"lib/python{python}/site-packages"
    shebang = f"{target_prefix.rstrip('/')}/bin/python{python}"
    with zipfile.ZipFile(wheel) as archive:
        names = sorted(n for n in archive.namelist() if not n.endswith("/"))
        info_dir = next((n.split("/")[0] for n in names
                         if re.match(r"^[^/]+\.dist-info/WHEEL$", n)), None)
        if info_dir is None:
            raise LockstepError(f"pip package {label}: {wheel.name} has no .dist-info/WHEEL.")
        data_dir = info_dir[: -len(".dist-info")] + ".data"
        dist = info_dir.split("-")[0]
        if _installed(prefix / site, info_dir, dist):
            return info_dir
        plan = []
        for member in names:
            if member in (f"{info_dir}/RECORD", f"{info_dir}/INSTALLER",
                          f"{info_dir}/direct_url.json", f"{info_dir}/REQUESTED"):
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
        entry_points = archive.read(f"{info_dir}/entry_points.txt").decode() if (
            f"{info_dir}/entry_points.txt" in names) else ""
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


def _installed(site: Path, info_dir: str, dist: str) -> bool:
    """True when this very wheel is installed; removes another version lockstep installed."""
    for other in sorted(site.glob(f"{dist}-*.dist-info")):
        if (other / "INSTALLER").is_file() and (other / "INSTALLER").read_text().strip() == (
            INSTALLER
        ):
            if other.name == info_dir:
                return True
            _remove(site, other.name)
    return False


def _remove(site: Path, info_dir: str) -> None:
    """Delete the files a lockstep-installed distribution's ``RECORD`` lists."""
    record = site / info_dir / "RECORD"
    if not record.is_file():
        return
    prefix = site.parent.parent.parent.resolve()
    folders = {record.parent}
    for line in record.read_text().splitlines():
        target = site / line.split(",", 1)[0]
        if target.resolve().is_relative_to(prefix):
            target.unlink(missing_ok=True)
            folders.add(target.parent)
    record.unlink(missing_ok=True)
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
        while folder.resolve() != prefix and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a folder the distribution's files alone filled
            folder = folder.parent


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
