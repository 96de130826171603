"""The content-addressed .pyc cache, kept by the host and never shown to package code.

Guarantees: a cached .pyc is found by ``sha256(final path, source bytes)`` inside a
namespace named by the environment's *interpreter identity*: the packages that can change
what ``python -I -S`` does when it compiles (python itself and its dependency closure,
every package with files the interpreter reads outside ``site-packages`` or in
``ssl/``/``etc/``, and every package that overwrites another package's file). A package
that ships only ``site-packages`` files (a ``.pth`` included, which ``-S`` never runs)
cannot change the identity, so .pyc files are shared between projects; a hostile
interpreter, stdlib or shared library changes the identity, so what it compiles is only
ever served back to environments with that same package.

Each namespace is one SQLite file, ``<cache>/<identity>.sqlite3`` (``PycStore``): a cold
build files thousands of .pyc at once, and one transaction costs a fraction of what as
many small files do. Entries are made only by the host, from bytes the sandboxed compiler
sent once it has exited cleanly (``spawner.image.bytecode``); a source reached through a
link out of the environment is never cached. The cache is only a cache: a file that is
not a readable SQLite database is an error naming it and saying to remove it.

It reads ``conda-meta`` (written by rattler) and source files; it must not run anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from spawner.errors import LockstepError
from spawner.image.pycompile import sources

FORMAT = b"lockstep-pyc-4"
UNREAD_PREFIXES = ("share/", "include/", "man/", "conda-meta/", "etc/jupyter/", "Menu/")


@dataclass(frozen=True)
class Source:
    relative: str  # lib/pythonX.Y/..., relative to the staging folder
    key: str  # "" for a source that must not be cached (a link out of the environment)
    size: int = field(default=0, compare=False)  # bytes read for the key (0 with no key)


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
    return Path(pyc_relative(str(root), relative, tag))


def pyc_relative(root: str, relative: str, tag: str) -> str:
    """``pyc_path`` as a string; ``root`` "" gives the path relative to the env."""
    folder, _, name = relative.rpartition("/")
    head = f"{root}/{folder}" if root else folder
    return f"{head}/__pycache__/{name[:-3]}.{tag}.pyc"


def put(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` as a new file renamed over ``path`` (never edits a file in place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_bytes(data)
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


class PycStore:
    """One interpreter identity's .pyc namespace: ``key`` -> .pyc bytes, in SQLite.

    Safe for several builds at once (SQLite's locking; a writer waits up to ``timeout``
    seconds for another). A hit is bytes, never a file the caller could be handed twice."""

    _BATCH = 500  # keys per SELECT (SQLite's bound-parameter limit is 999 on old builds)

    def __init__(self, path: Path, *, timeout: float = 120) -> None:
        self.path = Path(path)
        self.timeout = timeout

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, timeout=self.timeout)
            db.execute("PRAGMA page_size = 65536")  # applies to a new file only
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS pyc (key TEXT PRIMARY KEY, data BLOB NOT NULL)")
        except sqlite3.DatabaseError as err:
            raise self._broken(err) from None
        return db

    def _broken(self, err: Exception) -> LockstepError:
        return LockstepError(
            f"the bytecode cache {self.path} cannot be read ({err}). It is only a cache: "
            f"remove it (rm {self.path}) and build again."
        )

    def get(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The cached .pyc bytes of those ``keys`` that are cached."""
        wanted = [key for key in dict.fromkeys(keys) if key]
        if not wanted or not self.path.exists():
            return {}
        found: dict[str, bytes] = {}
        db = self._connect()
        try:
            for i in range(0, len(wanted), self._BATCH):
                chunk = wanted[i : i + self._BATCH]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(f"SELECT key, data FROM pyc WHERE key IN ({marks})", chunk)
                found.update(rows.fetchall())
        except sqlite3.DatabaseError as err:
            raise self._broken(err) from None
        finally:
            db.close()
        return found

    def put(self, items: Iterable[tuple[str, bytes]]) -> None:
        """File ``(key, bytes)`` pairs in one transaction; an empty key is never filed, a
        key already there keeps its bytes."""
        rows = [(key, data) for key, data in items if key]
        if not rows:
            return
        db = self._connect()
        try:
            with db:
                db.executemany("INSERT OR IGNORE INTO pyc (key, data) VALUES (?, ?)", rows)
        except sqlite3.DatabaseError as err:
            raise self._broken(err) from None
        finally:
            db.close()


def store_for(cache: Path, identity: str) -> PycStore:
    """The namespace of ``identity`` under the cache folder ``cache``."""
    return PycStore(Path(cache) / f"{identity}.sqlite3")


def is_test_source(relative: str, version: str) -> bool:
    """Whether ``relative`` is in a package's test suite: a ``tests/`` or ``test/`` folder
    inside ``lib/pythonX.Y/site-packages`` (the standard library's ``test`` is not)."""
    site = f"lib/python{version}/site-packages/"
    if not relative.startswith(site):
        return False
    folders = relative[len(site) :].split("/")[:-1]
    return "tests" in folders or "test" in folders


def find_sources(staging: Path, version: str, *, prefix: str, tests: bool = True) -> list[Source]:
    """Every source to compile, with its cache key ("" for one reached through a link out
    of the environment: compiled, never cached). ``tests=False``: sources in packages'
    test suites (``is_test_source``) are left out."""
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
    listed = []
    for path in found:
        relative, real = path[cut:], path
        if not (direct and stat.S_ISREG(os.lstat(path).st_mode)):
            real = os.path.realpath(path)
            if not real.startswith(inside) or not _regular(real):
                listed.append(Source(relative, ""))
                continue
        with open(real, "rb") as fh:
            data = fh.read()
        listed.append(Source(relative, source_key(relative, data, prefix), len(data)))
    return listed


def serve_hits(
    staging: Path, version: str, *, store: PycStore, prefix: str, tests: bool = True
) -> tuple[int, dict[str, bytes], list[Source]]:
    """(sources, the cached .pyc bytes by source, the sources still to compile)."""
    found = find_sources(staging, version, prefix=prefix, tests=tests)
    cached = store.get(source.key for source in found)
    hits = {s.relative: cached[s.key] for s in found if s.key in cached}
    return len(found), hits, [s for s in found if s.relative not in hits]
