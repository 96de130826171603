"""Install a lock's ``manager: pip`` entries into a prefix: verified wheels, unpacked by us.

Guarantees: each wheel is fetched (through ``c.Lockstep.mirrors``) into
``<cache>/wheels/<sha256>/<file>`` and its sha256 checked against the lock before it is
opened; no pip or uv runs (no dependency resolution: the lock is complete). An sdist is
refused naming it, unless the caller passes the build sandbox (the site allows sdists):
then ``pipbuild`` builds it there from the environment's own backend, and the built
wheel is unpacked like any other, its origin in ``LOCKSTEP_BUILT.json``. Unpacking
(``pipunpack``) is deterministic and refuses a member that would leave the prefix,
overwrite a conda package's file or touch the interpreter's own files. A failed call
leaves the prefix as it was: the pip packages it unpacked are taken out again, and
another version of a distribution it replaced (set aside in the call's scratch folder)
is put back byte for byte. With ``build_sandbox = "none"`` the build runs in the host's
scratch folder, which a backend may record in the wheel: ``progress`` says so per sdist.
It must not import rattler or conda-lock.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from spawner.errors import LockstepError
from spawner.lock import pipbuild, pipunpack
from spawner.lock.fetch import ChecksumError, _copy, mirrored_url, sha256_of
from spawner.lock.pipunpack import INSTALLER, unpack  # noqa: F401 (INSTALLER: re-exported)
from spawner.lock.pipwheels import SDIST_NAME_RE, WHEEL_NAME_RE, locked_sdist
from spawner.lock.policy import SHA256_RE

BUILT = "LOCKSTEP_BUILT.json"
"""In a dist-info built here from an sdist: what was built from what (``_built_record``)."""


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
            actual = _copy(
                mirrored_url(wheel.url, mirrors),
                out,
                timeout=120,
                label=f"pip package {wheel.name} {wheel.version}",
            )
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
    wheels: Sequence[Wheel],
    prefix: Path,
    *,
    target_prefix: str,
    cache_dir: Path,
    mirrors: Mapping[str, str],
    sandbox: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[str]:
    """Unpack every wheel into ``prefix``; returns ``name==version`` for each.

    Source distributions (locked only where the site allows them) need ``sandbox`` (the
    site's ``build_sandbox``): their build backends are checked against what the
    environment will hold before anything is unpacked, then each is built into a wheel by
    ``pipbuild`` after the wheels are in, and unpacked with ``LOCKSTEP_BUILT.json`` (sdist
    URL and sha256, built wheel and its sha256) in its dist-info. A failed call leaves the
    prefix as it was: the pip packages it unpacked are removed, and another version of a
    distribution it replaced (set aside in the call's scratch folder, never through a
    link out of the prefix) is put back byte for byte. None: an sdist is refused, naming
    it. ``progress`` gets one line per sdist built unsandboxed (``sandbox == "none"``)."""
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
        planned = _plan_sources(
            sources,
            prefix,
            binaries,
            python=version,
            work=Path(tmp),
            cache_dir=cache_dir,
            mirrors=mirrors,
        )
        where = {"prefix": prefix, "python": version, "target_prefix": target_prefix}
        _unpack_all(zip(binaries, paths, strict=True), planned, Path(tmp), sandbox, progress, where)
    return sorted(f"{w.name}=={w.version}" for w in wheels)


def _unpack_all(binaries, planned, work: Path, sandbox, progress, where: dict) -> None:
    """Unpack the wheels, then build and unpack each planned sdist; on failure, take out
    what this call unpacked and put back what it replaced (set aside under ``work``)."""
    site = where["prefix"] / f"lib/python{where['python']}/site-packages"
    kept = {p.name for p in site.glob("*.dist-info")}  # there before this call: kept
    done: list[str] = []
    aside = work / ".replaced"  # no package name starts with a dot: never a build folder
    put = functools.partial(unpack, **where, aside=aside)
    try:
        for wheel, path in sorted(binaries, key=lambda x: x[0].name):
            done.append(put(path, label=wheel.name))
        for wheel, root, system in planned:
            built = _build(wheel, root, system, sandbox, work / wheel.name, progress, **where)
            done.append(put(built, label=wheel.name, extra=_built_record(wheel, built, system)))
    except (LockstepError, OSError):
        for info_dir in sorted(set(done) - kept):
            pipunpack.remove(site, info_dir)
        pipunpack.put_back(aside, site)
        raise


def _build(wheel: Wheel, root: Path, system, sandbox: str, work: Path, progress, **env):
    """One planned sdist built into a wheel under ``work`` (``pipbuild.build_wheel``);
    unsandboxed, ``progress`` first hears that the wheel may hold the host's ``work``."""
    if progress is not None and sandbox == "none":
        progress(
            f"pip package {wheel.name} {wheel.version}: building its sdist UNSANDBOXED "
            f"(c.Lockstep.build_sandbox = 'none') in {work}; a backend that records its "
            "build folder puts that host path into the wheel, so the wheel (and the image "
            "digest) can differ from another build's. Use 'bwrap' for builds that reproduce."
        )
    label = f"{wheel.name} {wheel.version}"
    return pipbuild.build_wheel(
        root,
        system,
        label=label,
        name=wheel.name,
        version=wheel.version,
        sandbox=sandbox,
        work=work,
        **env,
    )


def _sdists_refused(sources: Sequence[Wheel]) -> str:
    shown = ", ".join(f"{w.name}=={w.version} ({w.filename})" for w in sources[:5])
    return (
        f"pip package(s) {shown} are source distributions; lockstep builds them only "
        "in the build sandbox where the site allows sdists (c.Lockstep.pip_allow_sdists"
        " = True). Pin versions with a wheel, or use the conda packages, and re-lock "
        "with `lockstep lock`. Nothing of the pip packages was installed."
    )


def refuse_locked_sdists(packages, source: str) -> None:
    """Refuse a lock whose pip entries include an sdist, on a site that does not allow them
    (``c.Lockstep.pip_allow_sdists``): checked before a build, even one already pushed."""
    found = [p for p in packages if locked_sdist(p)]
    if found:
        shown = ", ".join(f"{p.name}=={p.version}" for p in found[:5])
        raise LockstepError(
            f"{source}: pip package(s) {shown} are source distributions, which this site "
            "does not allow. Pin versions with a wheel, or use the conda packages, and "
            "re-lock with `lockstep lock`; or set c.Lockstep.pip_allow_sdists = True to "
            "build them in the build sandbox."
        )


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
    record = {
        "sdist": {"url": wheel.url, "sha256": wheel.sha256},
        "wheel": {"file": built.name, "sha256": sha256_of(built)},
        "backend": system.backend,
        "source_date_epoch": pipbuild.EPOCH,
    }
    return {BUILT: (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()}
