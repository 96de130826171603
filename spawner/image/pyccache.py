"""The content-addressed .pyc cache, kept by the host and never shown to package code.

Guarantees: a cached .pyc is found by ``sha256(final path, source bytes)`` inside a
namespace named by the environment's *interpreter identity*: the packages that can change
what ``python -I -S`` does when it compiles (python itself and its dependency closure,
every package with files the interpreter reads outside ``site-packages`` or in
``ssl/``/``etc/``, and every package that overwrites another package's file). A package
that ships only ``site-packages`` files (a ``.pth`` included, which ``-S`` never runs)
cannot change the identity, so .pyc files are shared between projects; a hostile
interpreter, stdlib or shared library changes the identity, so what it compiles is only
ever served back to environments with that same package. Entries are made only by the
host, each renamed into place, from regular files with one link that the sandbox wrote
into its own output folder, once that sandbox has exited (``take_compiled``): the file is made
``0644`` and moved into the staging folder, and the cache entry is a hardlink to it (a
copy across filesystems); a hit is hardlinked (or copied) from the cache into the staging
folder.
No file is ever opened for writing once it is in place, so files in the staging folder that
are hardlinks into the package or .pyc cache are never changed.

It reads ``conda-meta`` (written by rattler) and source files; it must not run anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from spawner.image.pycompile import sources

FORMAT = b"lockstep-pyc-2"
UNREAD_PREFIXES = ("share/", "include/", "man/", "conda-meta/", "etc/jupyter/", "Menu/")


@dataclass(frozen=True)
class Source:
    relative: str  # lib/pythonX.Y/..., relative to the staging folder
    key: str  # "" for a source that must not be cached (a link out of the environment)


def _records(staging: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((staging / "conda-meta").glob("*.json"))]


def _reads(path: str, site: str) -> bool:
    """Whether ``python -I -S`` compiling bytecode may read ``path`` (relative)."""
    if path.startswith(site):
        return False
    if path.startswith("bin/"):
        return path.startswith("bin/python")
    return not path.startswith(UNREAD_PREFIXES)


def _closure(records: list[dict], root: str) -> set[str]:
    depends = {r["name"]: [d.split()[0] for d in r.get("depends", [])] for r in records}
    seen, todo = set(), [root]
    while todo:
        name = todo.pop()
        if name in depends and name not in seen:
            seen.add(name)
            todo.extend(depends[name])
    return seen


def interpreter_identity(staging: Path, version: str) -> str:
    """The namespace of the .pyc cache this environment may read and fill (hex)."""
    records = _records(Path(staging))
    site = f"lib/python{version}/site-packages/"
    owners: dict[str, int] = {}
    for record in records:
        for path in record.get("files", []):
            owners[path] = owners.get(path, 0) + 1
    chosen = _closure(records, "python")
    for record in records:
        files = record.get("files", [])
        if any(owners[f] > 1 for f in files) or any(_reads(f, site) for f in files):
            chosen.add(record["name"])
    digest = hashlib.sha256(FORMAT + version.encode())
    for record in sorted(records, key=lambda r: r["name"]):
        if record["name"] in chosen:
            fields = (record["name"], record["version"], record["build"], record.get("sha256", ""))
            digest.update(("\0" + "=".join(str(f) for f in fields)).encode())
    return digest.hexdigest()[:32]


def _regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def source_key(relative: str, data: bytes, prefix: str) -> str:
    return hashlib.sha256(f"{prefix}/{relative}".encode() + b"\0" + data).hexdigest()


def pyc_path(root: Path, relative: str, tag: str) -> Path:
    """``root/<folder>/__pycache__/<stem>.<tag>.pyc`` for source ``relative``."""
    return Path(_pyc(str(root), relative, tag))


def _pyc(root: str, relative: str, tag: str) -> str:
    folder, _, name = relative.rpartition("/")
    return f"{root}/{folder}/__pycache__/{name[:-3]}.{tag}.pyc"


def _entry(cache: Path, key: str) -> str:
    return f"{cache}/{key[:2]}/{key}.pyc"


def put(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` as a new file renamed over ``path`` (never edits a file in place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_bytes(data)
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


def link(source: str, dest: str) -> None:
    """Make ``dest`` (its folder exists) name ``source``'s file: a hardlink renamed into
    place, or a copy (``put``) where the two are on different filesystems."""
    tmp = f"{dest}.tmp{os.getpid()}-{threading.get_ident()}"
    try:
        os.link(source, tmp)
    except OSError:  # another filesystem, or links not allowed there
        put(Path(dest), Path(source).read_bytes())
        return
    os.replace(tmp, dest)


class _Folders:
    """``mkdir -p`` that remembers what it made (thousands of .pyc share few folders)."""

    def __init__(self) -> None:
        self.made: set[str] = set()

    def __call__(self, path: str) -> str:
        folder = os.path.dirname(path)
        if folder not in self.made:
            os.makedirs(folder, exist_ok=True)
            self.made.add(folder)
        return path


def is_test_source(relative: str, version: str) -> bool:
    """Whether ``relative`` is in a package's test suite: a ``tests/`` or ``test/`` folder
    inside ``lib/pythonX.Y/site-packages`` (the standard library's ``test`` is not)."""
    site = f"lib/python{version}/site-packages/"
    if not relative.startswith(site):
        return False
    folders = relative[len(site) :].split("/")[:-1]
    return "tests" in folders or "test" in folders


def serve_hits(
    staging: Path,
    version: str,
    *,
    cache: Path,
    prefix: str,
    tag: str,
    workers: int = 8,
    tests: bool = True,
) -> tuple[int, list[Source]]:
    """Link cached .pyc files into ``staging``; returns (sources, the ones still missing).

    ``tests=False``: sources in packages' test suites (``is_test_source``) are left out."""
    staging = Path(staging)
    found = sources(str(staging / f"lib/python{version}"))
    cut = len(str(staging)) + 1
    if not tests:
        found = [path for path in found if not is_test_source(path[cut:], version)]

    inside = os.path.realpath(staging) + "/"
    lib = f"lib/python{version}"
    # ``sources`` never enters a linked folder: unless lib/pythonX.Y is itself reached
    # through a link, only a link in the file's own name can lead out of the env
    direct = os.path.realpath(staging / lib) == inside + lib
    folders = _Folders()

    def one(path: str) -> Source | None:
        relative = path[cut:]
        real = path
        if not (direct and stat.S_ISREG(os.lstat(path).st_mode)):
            real = os.path.realpath(path)
            if not real.startswith(inside) or not _regular(real):
                return Source(relative, "")  # a link out of the env: compiled, never cached
        key = source_key(relative, Path(real).read_bytes(), prefix)
        cached = _entry(cache, key)
        if _regular(cached):
            link(cached, folders(_pyc(str(staging), relative, tag)))
            return None
        return Source(relative, key)

    with ThreadPoolExecutor(workers) as pool:
        missing = [s for s in pool.map(one, found) if s is not None]
    return len(found), missing


def take_compiled(
    out: Path, staging: Path, missing: Iterable[Source], *, cache: Path, tag: str
) -> dict[str, str | None]:
    """Move what the sandbox compiled into ``staging`` and the cache: for each source its
    .pyc's path in ``staging``, or None when there is none to take.

    Called once the sandbox has exited (nothing in it runs on): each produced file that
    is a regular file with one link is made ``0644``, renamed into ``staging`` and
    hardlinked into the cache (a copy where those are on different filesystems)."""
    folders = _Folders()
    return {item.relative: _take(out, staging, item, cache, tag, folders) for item in missing}


def _take(out: Path, staging: Path, item: Source, cache: Path, tag: str, folders) -> str | None:
    produced = _pyc(str(out), item.relative, tag)
    try:
        info = os.lstat(produced)
    except FileNotFoundError:
        return None  # did not compile (Python 2 test data), as compileall skips it
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        return None
    os.chmod(produced, 0o644)  # the sandbox's mode bits are not kept
    placed = folders(_pyc(str(staging), item.relative, tag))
    try:
        os.replace(produced, placed)
    except OSError:  # ``out`` on another filesystem than ``staging``
        put(Path(placed), Path(produced).read_bytes())
    if item.key:
        link(placed, folders(_entry(cache, item.key)))
    return placed
