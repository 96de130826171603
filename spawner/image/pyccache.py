"""The content-addressed .pyc cache, kept by the host and never shown to package code.

Guarantees: a cached .pyc is found by ``sha256(final path, source bytes)`` inside a
namespace named by the environment's *interpreter identity*: the packages that can change
what ``python -I -S`` does when it compiles (python itself and its dependency closure,
every package with files the interpreter reads outside ``site-packages`` or in
``ssl/``/``etc/``, and every package that overwrites another package's file). A package
that ships only ``site-packages`` files (a ``.pth`` included, which ``-S`` never runs)
cannot change the identity, so .pyc files are shared between projects; a hostile
interpreter, stdlib or shared library changes the identity, so what it compiles is only
ever served back to environments with that same package. Entries are written only by the
host, each a new file renamed into place, from regular files the sandbox wrote into its
own output folder (links are ignored). Files in the staging folder that are hardlinks into
the package cache are never opened for writing.

It reads ``conda-meta`` (written by rattler) and source files; it must not run anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
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
    folder, _, name = relative.rpartition("/")
    return Path(root) / folder / "__pycache__" / f"{name[:-3]}.{tag}.pyc"


def put(path: Path, data: bytes) -> None:
    """Write ``data`` as a new file renamed over ``path`` (never edits a file in place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def serve_hits(
    staging: Path, version: str, *, cache: Path, prefix: str, tag: str, workers: int = 8
) -> tuple[int, list[Source]]:
    """Copy cached .pyc files into ``staging``; returns (sources, the ones still missing)."""
    staging = Path(staging)
    found = sources(str(staging / "lib" / f"python{version}"))
    cut = len(str(staging)) + 1

    inside = os.path.realpath(staging) + "/"

    def one(path: str) -> Source | None:
        relative = path[cut:]
        real = os.path.realpath(path)
        if not real.startswith(inside) or not _regular(real):
            return Source(relative, "")  # a link out of the env: compiled, never cached
        key = source_key(relative, Path(real).read_bytes(), prefix)
        cached = cache / key[:2] / f"{key}.pyc"
        if cached.is_file():
            put(pyc_path(staging, relative, tag), cached.read_bytes())
            return None
        return Source(relative, key)

    with ThreadPoolExecutor(workers) as pool:
        missing = [s for s in pool.map(one, found) if s is not None]
    return len(found), missing


def take_compiled(
    out: Path, staging: Path, missing: Iterable[Source], *, cache: Path, tag: str
) -> int:
    """Move what the sandbox compiled into ``staging`` and the cache; returns how many."""
    taken = 0
    for item in missing:
        produced = pyc_path(out, item.relative, tag)
        try:
            info = os.lstat(produced)
        except FileNotFoundError:
            continue  # did not compile (Python 2 test data), as compileall skips it
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            continue
        data = produced.read_bytes()
        put(pyc_path(staging, item.relative, tag), data)
        if item.key:
            put(cache / item.key[:2] / f"{item.key}.pyc", data)
        taken += 1
    return taken
