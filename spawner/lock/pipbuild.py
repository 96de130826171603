"""A locked sdist built into a wheel inside the build sandbox, from the environment itself.

Guarantees: ``build_system`` reads the sdist's ``[build-system]`` (no ``pyproject.toml``:
setuptools' legacy backend, as pip and uv assume); ``missing_backend`` names each
requirement of it the staged environment does not satisfy, so ``install_wheels`` refuses
the lock (naming the package, the missing backend and the fix) before any pip package is
unpacked. ``build_wheel`` runs the backend's ``build_wheel`` with the environment's own
python (``pipbuildhook``) under ``spawner.image.sandbox`` (bubblewrap: no network, a
private user namespace, empty environment, the environment read-only at its final path,
only the scratch folder writable, bound at ``/build`` so no host path reaches the backend
or the wheel), with ``SOURCE_DATE_EPOCH`` and ``PYTHONHASHSEED`` fixed; nothing is
downloaded, so a backend that wants more than the environment holds fails, named: the
package, the backend, the build's last lines and the fix (``SdistBuildError``). The
wheel is re-packed deterministically (members sorted, fixed dates and modes) and checked
to be the locked name and version. Extraction refuses members that would leave the
scratch folder. It writes only under ``work``; it must not import rattler or uv.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
import tomllib
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from spawner.errors import LockstepError
from spawner.image.sandbox import require_sandbox, sandboxed
from spawner.lock.pipwheels import WHEEL_NAME_RE, ZIP_DATE

HOOK = Path(__file__).with_name("pipbuildhook.py")
LEGACY = ("setuptools.build_meta:__legacy__", (), ("setuptools>=40.8.0",))
EPOCH = 315532800  # 1980-01-01, the earliest date a zip member can carry
ENV = {
    "PYTHONHASHSEED": "0",
    "SOURCE_DATE_EPOCH": str(EPOCH),
    "HOME": "/tmp",
    "PYTHONDONTWRITEBYTECODE": "1",
    "LC_ALL": "C.UTF-8",
}
BUILD_DIR = "/build"
"""Where the sandbox binds the build's scratch folder (the sdist under ``src/``)."""
TAIL_LINES = 25
FIX = (
    "Pin a version with a wheel for this platform, use its conda package, or make the build "
    "possible (add what it needs to the spec) and re-lock with `lockstep lock`. Nothing of "
    "the pip packages was installed."
)


class SdistBuildError(LockstepError):
    """An sdist that cannot be built into a wheel here."""


@dataclass(frozen=True)
class BuildSystem:
    backend: str
    paths: tuple[str, ...]
    requires: tuple[str, ...]


def extract(sdist: Path, dest: Path, *, label: str) -> Path:
    """Unpack ``sdist`` under ``dest`` (members that would leave it refused); its root."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if sdist.name.endswith(".zip"):
            with zipfile.ZipFile(sdist) as archive:
                for name in archive.namelist():
                    if name.startswith("/") or ".." in Path(name).parts:
                        raise SdistBuildError(
                            f"pip package {label}: {sdist.name} has a member "
                            f"{name!r} outside its folder; not built."
                        )
                archive.extractall(dest)
        else:
            with tarfile.open(sdist, "r:*") as archive:
                archive.extractall(dest, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise SdistBuildError(
            f"pip package {label}: cannot unpack {sdist.name} ({exc}); "
            "re-lock, or use a version with a wheel."
        ) from None
    tops = [p for p in dest.iterdir() if p.is_dir()]
    return tops[0] if len(tops) == 1 else dest


def build_system(root: Path) -> BuildSystem:
    """The sdist's build backend, its ``backend-path`` and its build requirements."""
    pyproject = root / "pyproject.toml"
    table = (
        tomllib.loads(pyproject.read_text()).get("build-system", {})
        if (pyproject.is_file())
        else {}
    )
    if not table.get("build-backend"):
        return BuildSystem(LEGACY[0], LEGACY[1], tuple(table.get("requires") or LEGACY[2]))
    return BuildSystem(
        str(table["build-backend"]),
        tuple(table.get("backend-path") or ()),
        tuple(str(r) for r in table.get("requires") or ()),
    )


def installed_dists(prefix: Path) -> dict[str, str]:
    """canonical name -> version of every distribution in the prefix's site-packages."""
    found = {}
    for info in sorted(Path(prefix).glob("lib/python*/site-packages/*.*-info")):
        match = re.match(r"^(.+?)-([^-]+?)\.(dist|egg)-info$", info.name)
        if match:
            found[canonicalize_name(match[1])] = match[2]
    return found


def missing_backend(system: BuildSystem, installed: Mapping[str, str], *, env) -> list[str]:
    """The build requirements the environment does not satisfy (markers evaluated)."""
    missing = []
    for text in system.requires:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            missing.append(text)
            continue
        if requirement.marker is not None and not requirement.marker.evaluate(env):
            continue
        version = installed.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            missing.append(text)
    return missing


def refusal(label: str, missing: list[str], system: BuildSystem) -> SdistBuildError:
    names = ", ".join(missing)
    return SdistBuildError(
        f"pip package {label} is locked as a source distribution, and its build backend "
        f"({system.backend}) needs {names}, which the locked environment does not have "
        "(the build sandbox has no network, so nothing is downloaded to build it). Add "
        f"{names} to the spec (a conda dependency, or a pip line) and re-lock with "
        f"`lockstep lock`, or pin a version of {label.split()[0]} with a wheel, or use its "
        "conda package. Nothing of the pip packages was installed."
    )


def build_wheel(
    root: Path,
    system: BuildSystem,
    *,
    label: str,
    name: str,
    version: str,
    prefix: Path,
    target_prefix: str,
    python: str,
    sandbox: str,
    work: Path,
    timeout: float = 900,
) -> Path:
    """Build ``root`` (an unpacked sdist under ``work``) into a normalised wheel under
    ``work``. Sandboxed, ``work`` is bound at ``BUILD_DIR`` (``/build``): the backend never
    sees the host's scratch path, so the wheel does not depend on it."""
    bwrap = require_sandbox(sandbox)
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    argv, env = _argv(
        root,
        system,
        bwrap=bwrap,
        prefix=prefix,
        target_prefix=target_prefix,
        python=python,
        work=work,
    )
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SdistBuildError(
            f"pip package {label}: building its sdist (backend {system.backend}) took more "
            f"than {timeout:.0f} s and was stopped. {FIX}"
        ) from None
    if proc.returncode == 3 and "LOCKSTEP-MISSING" in proc.stderr:
        raise refusal(label, [system.backend.split(":")[0]], system)
    built = re.search(r"^LOCKSTEP-WHEEL (\S+)$", proc.stdout, re.M)
    if proc.returncode != 0 or not built or not (out / built[1]).is_file():
        where = "in the build sandbox (bwrap, no network) " if bwrap else ""
        raise SdistBuildError(
            f"pip package {label}: its sdist could not be built {where}(backend "
            f"{system.backend}, exit {proc.returncode}); it may need a compiler or a build "
            f"dependency the environment does not have. {FIX}\n"
            f"The build's last lines:\n{tail(proc.stdout, proc.stderr)}"
        )
    return normalise(out / built[1], work / "wheel", name=name, version=version, label=label)


def _argv(
    root: Path,
    system: BuildSystem,
    *,
    bwrap: str | None,
    prefix: Path,
    target_prefix: str,
    python: str,
    work: Path,
) -> tuple[list[str], dict[str, str]]:
    """The hook's command line, sandboxed: the environment read-only at ``target_prefix``,
    the hook at ``/run/lockstep``, ``work`` writable at ``BUILD_DIR``."""
    inside = target_prefix if bwrap else str(prefix)
    hook = "/run/lockstep/pipbuildhook.py" if bwrap else str(HOOK)
    seen = BUILD_DIR if bwrap else str(work)  # the scratch folder as the backend sees it
    source = f"{seen}/{root.relative_to(work).as_posix()}"
    command = [
        f"{inside}/bin/python{python}",
        "-I",
        "-B",
        hook,
        source,
        f"{seen}/out",
        system.backend,
        *system.paths,
    ]
    return sandboxed(
        command,
        bwrap=bwrap,
        read_only=[(prefix, inside), (HOOK, hook)],
        writable=[(work, seen)],
        env=ENV,
    )


def tail(stdout: str, stderr: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines the build printed (stdout, then stderr), each indented and
    cut at 300 characters; ``(no output)`` when it printed nothing."""
    text = [line[:300] for line in (stdout + "\n" + stderr).splitlines() if line.strip()]
    return "\n".join(f"  | {line}" for line in text[-lines:]) or "  | (no output)"


def normalise(wheel: Path, folder: Path, *, name: str, version: str, label: str) -> Path:
    """``wheel`` re-packed byte-stably (sorted members, fixed dates, 0644/0755 modes)."""
    try:
        wheel_name, wheel_version, _b, _t = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename:
        wheel_name, wheel_version = "", ""
    if (
        not WHEEL_NAME_RE.match(wheel.name)
        or canonicalize_name(wheel_name) != name
        or str(wheel_version) != str(version)
    ):
        raise SdistBuildError(
            f"pip package {label}: its sdist built {wheel.name}, not "
            f"{name} {version}; the lock and the sdist disagree. Re-lock."
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / wheel.name
    with (
        zipfile.ZipFile(wheel) as source,
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as target,
    ):
        for info in sorted(source.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            member = zipfile.ZipInfo(info.filename, ZIP_DATE)
            executable = (info.external_attr >> 16) & 0o111
            member.external_attr = (0o100755 if executable else 0o100644) << 16
            member.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(member, source.read(info.filename))
    return path
