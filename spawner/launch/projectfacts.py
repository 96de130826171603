"""What the spawn form and a server's landing page read from a project's folder, cheaply.

``read_facts(folder)`` gives a :class:`ProjectFacts`: the hash of ``conda-lock.yml`` (the
image label ``org.lockstep.lock-hash`` compares with it), the spec's direct dependencies
with the versions the lock pins, whether the lock has JupyterLab, and the build time the
build record beside the lock gives for its digest (``build-record.json``, ``built_at``).

Guarantees: plain files only (``environment.yml``, ``conda-lock.yml``,
``build-record.json``; YAML read with the C loader when there is one), each parsed once
per (size, mtime) and remembered for the process, so a form render costs a few ``stat``
calls; never raises for a missing or broken file (the facts it could not read stay empty
and ``problem`` says which file and why). Blocking: the Hub calls it in a worker thread.

Must not: talk to a registry or an engine, import conda-lock or rattler, decide who may
see a project (``access``), or write anywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

SPEC_NAME, LOCK_NAME, RECORD_NAME = "environment.yml", "conda-lock.yml", "build-record.json"
LAB = "jupyterlab"
PLATFORM = "linux-64"  # what servers run; the form shows that platform's versions
_NAME = re.compile(r"^\s*(?:[^:\s]+::)?([A-Za-z0-9_.\-]+)")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Package:
    """A direct dependency of the spec and the version the lock pins ('' when unlocked)."""

    name: str
    version: str = ""
    manager: str = "conda"


@dataclass(frozen=True)
class ProjectFacts:
    """What a project's folder says about its current lock and its last build."""

    lock_hash: str = ""
    packages: tuple[Package, ...] = ()
    locked: frozenset[str] = frozenset()
    """Every conda package name the lock pins for ``PLATFORM``."""
    built: Mapping[str, str] = field(default_factory=dict)
    """Image digest -> when it was built (UTC, RFC 3339), from the build record."""
    problem: str = ""

    def is_lock_of(self, lock_hash: str) -> bool:
        """True when an image labelled ``lock_hash`` was built from this very lock."""
        return bool(lock_hash) and lock_hash == self.lock_hash

    def serves_lab(self, lock_hash: str) -> bool:
        """True when an image of ``lock_hash`` is known (from this lock) to have JupyterLab."""
        return self.is_lock_of(lock_hash) and LAB in self.locked


def dependency_name(dep: str) -> str:
    """``conda-forge::numpy>=2`` -> ``numpy``; ``pandas[extra]==2`` -> ``pandas``. Pure."""
    match = _NAME.match(str(dep))
    return match.group(1).lower() if match else ""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def spec_dependencies(spec: Mapping) -> list[tuple[str, str]]:
    """(name, manager) of the spec's direct dependencies, in the spec's order. Pure."""
    found: list[tuple[str, str]] = []
    for dep in (spec or {}).get("dependencies") or ():
        if isinstance(dep, Mapping):
            found += [(dependency_name(p), "pip") for p in dep.get("pip") or ()]
        elif dependency_name(dep) and dependency_name(dep) != "pip":
            found.append((dependency_name(dep), "conda"))
    return [(n, m) for n, m in dict.fromkeys(found) if n]


def locked_versions(lock: Mapping) -> dict[tuple[str, str], str]:
    """(manager, normalised name) -> version for ``PLATFORM`` (else the lock's first). Pure."""
    packages = [p for p in (lock or {}).get("package") or () if isinstance(p, Mapping)]
    platforms = ((lock or {}).get("metadata") or {}).get("platforms") or [PLATFORM]
    platform = PLATFORM if PLATFORM in platforms else str(platforms[0])
    return {
        (str(p.get("manager", "conda")), _norm(str(p.get("name", "")))): str(p.get("version", ""))
        for p in packages
        if p.get("platform") == platform
    }


def facts_of(
    *, spec: Mapping | None, lock_bytes: bytes | None, record: Mapping | None, problem: str = ""
) -> ProjectFacts:
    """The facts of already-read files (``None``: the file is missing). Pure."""
    lock = yaml.load(lock_bytes, Loader=_Loader) if lock_bytes else {}
    versions = locked_versions(lock if isinstance(lock, Mapping) else {})
    packages = tuple(
        Package(name, versions.get((manager, _norm(name)), ""), manager)
        for name, manager in spec_dependencies(spec or {})
    )
    built = {}
    if record and record.get("digest") and record.get("built_at"):
        built[str(record["digest"])] = str(record["built_at"])
    return ProjectFacts(
        lock_hash="sha256:" + hashlib.sha256(lock_bytes).hexdigest() if lock_bytes else "",
        packages=packages,
        built=built,
        problem=problem,
        locked=frozenset(name for manager, name in versions if manager == "conda"),
    )


_memo: dict[Path, tuple[tuple, ProjectFacts]] = {}
_guard = threading.Lock()


def _stamp(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError:
        return (None,)
    return (st.st_size, st.st_mtime_ns)


def _read(folder: Path) -> ProjectFacts:
    problems, spec, lock_bytes, record = [], None, None, None
    try:
        spec = yaml.load((folder / SPEC_NAME).read_bytes(), Loader=_Loader)
        lock_bytes = (folder / LOCK_NAME).read_bytes()
    except FileNotFoundError as exc:
        problems.append(f"{Path(exc.filename).name} is missing")
    except (OSError, yaml.YAMLError) as exc:
        problems.append(f"{folder.name}: {type(exc).__name__}")
    try:
        record = json.loads((folder / RECORD_NAME).read_text())
    except (OSError, ValueError):
        record = None
    try:
        return facts_of(
            spec=spec if isinstance(spec, Mapping) else {},
            lock_bytes=lock_bytes,
            record=record if isinstance(record, Mapping) else None,
            problem="; ".join(problems),
        )
    except (yaml.YAMLError, AttributeError, TypeError) as exc:
        return ProjectFacts(problem=f"{LOCK_NAME} could not be read ({type(exc).__name__})")


def read_facts(folder: str | Path) -> ProjectFacts:
    """The facts of ``folder`` (``environments/<project>``), re-read only when a file changed."""
    folder = Path(folder)
    stamp = tuple(_stamp(folder / n) for n in (SPEC_NAME, LOCK_NAME, RECORD_NAME))
    with _guard:
        known = _memo.get(folder)
    if known and known[0] == stamp:
        return known[1]
    facts = _read(folder)
    with _guard:
        if len(_memo) > 1024:
            _memo.clear()
        _memo[folder] = (stamp, facts)
    return facts


async def facts_for(names: Iterable[str], environments_dir: str | Path) -> dict[str, ProjectFacts]:
    """Project name -> its facts (``<environments_dir>/<name>``), read in a worker thread."""
    root = Path(environments_dir).expanduser()
    wanted = sorted(set(names))
    return await asyncio.to_thread(lambda: {n: read_facts(root / n) for n in wanted})
