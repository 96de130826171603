"""Deterministic tar layers, gzip-compressed with a fixed header, hashed as they are written.

Guarantees: the same entries give the same bytes, whatever the host, the order the
entries were found in, the files' owners, mtimes or inode numbers. Entries are sorted by
path; every header has mtime ``mtime`` (default 0), uid/gid as the entry says (0 unless
stated), empty user/group names, PAX format; there are no hardlink entries (a hardlinked
file is written as a regular file each time).

The blob is a gzip file of several members (RFC 1952 allows it; Docker, containerd,
podman, skopeo, Python's ``gzip`` and GNU gzip read it as one stream): the tar is cut
every ``MEMBER`` bytes and each piece compressed on its own by libdeflate (the
``deflate`` package) at ``GZIP_LEVEL``, each member with libdeflate's fixed 10-byte
header (no mtime, no file name, OS 255). Cut at fixed offsets of the tar, the blob does
not depend on how the bytes were read. libdeflate is about twice as fast as zlib at its
fastest level here, and its output a little smaller.

A layer's identity is its ``diff_id``: the sha256 of the uncompressed tar. The compressed
``digest`` also depends on the compressor's version (``compression()``, part of every
build key and of the blob cache's folder), so ``BlobCache`` keys compressed blobs by
``diff_id`` and a rebuild on the same machine reuses them byte for byte.

This module reads the files it is given and writes only the blob it is asked to write
(and the cache); it never changes a source file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import tarfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from spawner import procpool
from spawner.errors import LockstepError

GZIP_LEVEL = 1
"""Pinned: libdeflate's fastest level; smaller than zlib's level 1, and faster."""
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
"""Each member's: ID1 ID2, CM=deflate, FLG=0, MTIME=0, XFL=4 (fastest), OS=255
(unknown): no host data."""
_CHUNK = 1 << 20
MEMBER = _CHUNK
"""Tar bytes per gzip member (the last member holds what is left)."""


def compression(level: int = GZIP_LEVEL) -> str:
    """What makes the compressed bytes: the format, the compressor and its version."""
    return f"gzip-members-{MEMBER}-libdeflate-{_deflate().__version__}-level-{level}"


def _deflate():
    try:
        import deflate
    except ImportError:  # pragma: no cover - the build extra installs it
        raise LockstepError(
            "writing an image layer needs the 'deflate' package (libdeflate), which "
            "lockstep's build extra installs: pip install 'lockstep[build]'"
        ) from None
    return deflate


FORMAT = "lockstep-layer-1"
"""Names the tar and gzip format above in ``shape`` hints; change it with the format."""

Kind = Literal["file", "dir", "symlink"]


@dataclass(frozen=True)
class Entry:
    """One tar member. Content comes from ``source`` (a host file) or ``data`` (bytes)."""

    path: str
    kind: Kind
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    linkname: str = ""
    source: str | None = None
    data: bytes | None = None
    size: int = 0  # of ``source`` when known (saves a stat); ``data`` has its own length

    def __post_init__(self) -> None:
        path = self.path
        if path.startswith("./") or path.endswith("/") or "//" in path or "/./" in path:
            path = str(PurePosixPath(path))
            object.__setattr__(self, "path", path)
        if path.startswith("/") or path in ("", ".") or ".." in path.split("/"):
            raise ValueError(f"tar entry path {self.path!r} must be relative, without '..'")


@dataclass(frozen=True)
class LayerBlob:
    """A compressed layer: identity (``diff_id``), blob ``digest``, ``size`` and where it is."""

    diff_id: str
    digest: str
    size: int
    uncompressed_size: int
    path: str = ""


def normal_mode(kind: Kind, host_mode: int) -> int:
    """The mode a project layer stores: 0755 for dirs, symlinks and executables, else 0644."""
    if kind == "file":
        return 0o755 if host_mode & 0o111 else 0o644
    return 0o777 if kind == "symlink" else 0o755


def entry_for_path(host_path: str, layer_path: str) -> Entry:
    """An ``Entry`` for a host file/dir/symlink, with a normalised mode (uid/gid 0)."""
    st = os.lstat(host_path)
    if stat.S_ISLNK(st.st_mode):
        return Entry(layer_path, "symlink", 0o777, linkname=os.readlink(host_path))
    if stat.S_ISDIR(st.st_mode):
        return Entry(layer_path, "dir", 0o755)
    if stat.S_ISREG(st.st_mode):
        return Entry(
            layer_path, "file", normal_mode("file", st.st_mode), source=host_path, size=st.st_size
        )
    raise ValueError(f"{host_path}: only regular files, directories and symlinks can go in a layer")


def with_parents(entries: Iterable[Entry], *, mode: int = 0o755) -> list[Entry]:
    """Add a directory entry (root-owned, ``mode``) for every missing parent; sorted by path."""
    by_path = {e.path: e for e in entries}
    for path in list(by_path):  # paths are normalised (``Entry``): no "./", "//" or "/" end
        parent = path.rpartition("/")[0]
        while parent and parent not in by_path:  # a parent present has its own parents
            by_path[parent] = Entry(parent, "dir", mode)
            parent = parent.rpartition("/")[0]
    return [by_path[p] for p in sorted(by_path)]


def _entry_size(entry: Entry) -> int:
    if entry.kind != "file":
        return 0
    if entry.data is not None:
        return len(entry.data)
    return entry.size or os.stat(entry.source).st_size


def _tarinfo(entry: Entry, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path + ("/" if entry.kind == "dir" else ""))
    info.mtime = mtime
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, entry.linkname
    else:
        info.type = tarfile.REGTYPE
        info.size = _entry_size(entry)
    return info


class _Sink(io.RawIOBase):
    """File-like: hashes the tar, and (when ``out`` is given) gzips it, one member per
    ``MEMBER`` bytes of tar, and hashes the blob."""

    def __init__(self, out: BinaryIO | None, level: int) -> None:
        self.diff = hashlib.sha256()
        self.tar_size = 0
        self.pending = bytearray()
        self.out = out
        if out is not None:
            self.blob = hashlib.sha256()
            self.blob_size = 0
            self.level = level
            self.compress = _deflate().gzip_compress

    def writable(self) -> bool:
        return True

    def _emit(self, data: bytes) -> None:
        if data:
            self.blob.update(data)
            self.blob_size += len(data)
            self.out.write(data)

    def write(self, data) -> int:
        """Take ``data``: hashed and compressed in runs of exactly ``MEMBER`` bytes of tar
        (one call each, not one per header or small file)."""
        self.tar_size += len(data)
        view = memoryview(data)
        if self.pending:
            room = MEMBER - len(self.pending)
            self.pending += view[:room]
            view = view[room:]
            if len(self.pending) < MEMBER:
                return len(data)
            self._take(self.pending)
            self.pending = bytearray()
        while len(view) >= MEMBER:  # whole members straight from a big file: no copy
            self._take(view[:MEMBER])
            view = view[MEMBER:]
        self.pending += view
        return len(data)

    def _take(self, data) -> None:
        self.diff.update(data)
        if self.out is not None:
            self._emit(self.compress(data, self.level))

    def finish(self) -> None:
        if self.pending or not self.tar_size:
            self._take(self.pending)
            self.pending = bytearray()


_TYPES = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}


def _header(entry: Entry, size: int, mtime: int) -> bytes:
    """The header ``tarfile`` writes for ``entry`` in PAX format, byte for byte: built
    here for the common case (ASCII names and link targets, numbers that fit, no user or
    group name), where ``tarfile`` writes a plain ustar block, after a pax header with a
    ``path``/``linkpath`` record when the name or link is longer than its field; anything
    else is left to ``tarfile`` (``tests/unit/image/test_tarheader.py`` compares the two)."""
    name = entry.path + "/" if entry.kind == "dir" else entry.path
    if not (
        name.isascii() and entry.linkname.isascii() and 0 <= entry.uid < 0o10000000
        and 0 <= entry.gid < 0o10000000 and 0 <= size < 0o100000000000
        and 0 <= mtime < 0o100000000000 and isinstance(mtime, int)
    ):  # fmt: skip
        info = _tarinfo(entry, mtime)
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    nameb, linkb = name.encode(), entry.linkname.encode()
    block = _ustar(nameb[:100], entry.mode & 0o7777, entry.uid, entry.gid, size, mtime,
                   _TYPES[entry.kind], linkb[:100])  # fmt: skip
    if len(nameb) <= 100 and len(linkb) <= 100:
        return block
    records = b"".join(
        _pax_record(keyword, value)
        for keyword, value in ((b"path", nameb), (b"linkpath", linkb))
        if len(value) > 100
    )
    padding = bytes(-len(records) % tarfile.BLOCKSIZE)
    pax = _ustar(b"././@PaxHeader", 0, 0, 0, len(records), 0, tarfile.XHDTYPE, b"")
    return b"".join((pax, records, padding, block))


def _ustar(nameb: bytes, mode: int, uid: int, gid: int, size: int, mtime: int,
           kind: bytes, linkb: bytes) -> bytes:  # fmt: skip
    """One ustar block as ``tarfile`` writes it, for fields known to fit."""
    numbers = b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (mode, uid, gid, size, mtime)
    # the checksum: every byte, its own field read as eight spaces
    total = _FIXED_SUM + sum(nameb) + sum(linkb) + sum(numbers) + kind[0]
    return b"".join((
        nameb.ljust(100, b"\0"), numbers, b"%06o\0 " % total, kind, linkb.ljust(100, b"\0"),
        _TAIL,
    ))  # fmt: skip


def _pax_record(keyword: bytes, value: bytes) -> bytes:
    """``b"<length> <keyword>=<value>\\n"``, the length counting its own digits."""
    bare = len(keyword) + len(value) + 3
    length = bare + len(str(bare))
    if len(str(length)) != len(str(bare)):
        length = bare + len(str(length))
    return b"%d %s=%s\n" % (length, keyword, value)


_DEVICE_FIELDS = _tarinfo(Entry("x", "file", data=b""), 0).tobuf(tarfile.PAX_FORMAT)[329:345]
"""devmajor and devminor of a file that is no device, as this Python's tarfile writes them."""
_TAIL = (tarfile.POSIX_MAGIC + bytes(64) + _DEVICE_FIELDS).ljust(tarfile.BLOCKSIZE - 257, b"\0")
"""Everything after the link name: magic, empty owner names, device fields, empty prefix."""
_FIXED_SUM = sum(b" " * 8) + sum(_TAIL)


def _write_tar(entries: Iterable[Entry], sink: _Sink, mtime: int) -> None:
    """The bytes ``tarfile`` writes in PAX format, without its 10 KiB re-buffering."""
    ordered = sorted(entries, key=lambda e: e.path)
    paths = [e.path for e in ordered]
    if len(set(paths)) != len(paths):
        dupes = sorted({p for p in paths if paths.count(p) > 1})
        raise ValueError(f"layer has duplicate paths: {', '.join(dupes[:5])}")
    buffer = memoryview(bytearray(_CHUNK))
    for entry in ordered:
        size = _entry_size(entry)
        sink.write(_header(entry, size, mtime))
        if entry.kind != "file":
            continue
        if entry.data is not None:
            sink.write(entry.data)
        else:
            _copy(entry.source, size, sink, buffer)
        if size % tarfile.BLOCKSIZE:
            sink.write(bytes(tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE))
    sink.write(bytes(2 * tarfile.BLOCKSIZE))
    if sink.tar_size % tarfile.RECORDSIZE:
        sink.write(bytes(tarfile.RECORDSIZE - sink.tar_size % tarfile.RECORDSIZE))
    sink.finish()


def _copy(source: str, size: int, sink: _Sink, buffer: memoryview) -> None:
    """Stream ``source`` into ``sink`` through ``buffer`` (reused: a fresh megabyte for
    each read costs more in page faults than the copy)."""
    copied = 0
    with open(source, "rb", buffering=0) as fh:
        while count := fh.readinto(buffer):
            sink.write(buffer[:count])
            copied += count
    if copied != size:
        raise RuntimeError(f"{source} changed size while it was written into a layer; rebuild")


def diff_id(entries: Iterable[Entry], *, mtime: int = 0) -> tuple[str, int]:
    """The layer's ``sha256:`` diff_id and uncompressed size, without writing anything."""
    sink = _Sink(None, GZIP_LEVEL)
    _write_tar(entries, sink, mtime)
    return "sha256:" + sink.diff.hexdigest(), sink.tar_size


def write_layer(
    entries: Iterable[Entry], dest: Path, *, mtime: int = 0, level: int = GZIP_LEVEL
) -> LayerBlob:
    """Write the gzipped layer to ``dest`` (atomically) and return its hashes and sizes."""
    dest = Path(dest)
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as out:
            sink = _Sink(out, level)
            _write_tar(entries, sink, mtime)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)  # nothing half-written is left behind
        raise
    return LayerBlob(
        diff_id="sha256:" + sink.diff.hexdigest(),
        digest="sha256:" + sink.blob.hexdigest(),
        size=sink.blob_size,
        uncompressed_size=sink.tar_size,
        path=str(dest),
    )


class BlobCache:
    """Compressed layers on disk, keyed by diff_id and gzip level:
    ``<root>/<compression(level)>/<hex>.tar.gz`` + ``<hex>.json``.

    ``layer`` compresses each layer once: a layer seen before (its ``shape``: paths,
    kinds, modes, sizes and link targets, recorded in ``hints/``) is hashed first and
    reused on a hit; a new shape is compressed straight away, hashing as it goes (a cold
    build reads each file once), and filed under the diff_id it turned out to have; if
    that diff_id was cached already, the cached blob is kept, so a blob's bytes never
    change once cached. A hint only picks the order; a hit is always by diff_id."""

    def __init__(self, root: Path, *, level: int = GZIP_LEVEL) -> None:
        self.level = level
        self.root = Path(root) / compression(level)

    def get(self, layer_diff_id: str) -> LayerBlob | None:
        hexid = layer_diff_id.removeprefix("sha256:")
        meta, blob = self.root / f"{hexid}.json", self.root / f"{hexid}.tar.gz"
        if not (meta.is_file() and blob.is_file()):
            return None
        found = LayerBlob(**json.loads(meta.read_text()))
        if blob.stat().st_size != found.size:
            return None
        return replace(found, path=str(blob))

    def layer(self, entries: list[Entry], *, mtime: int = 0) -> LayerBlob:
        """The cached blob for these entries, compressing them only on a miss."""
        hint = self.root / "hints" / shape(entries, mtime)
        if hint.is_file() and self.get(hint.read_text()) is not None:
            layer_diff_id, _ = diff_id(entries, mtime=mtime)
            cached = self.get(layer_diff_id)
            if cached is not None:
                return cached
        self.root.mkdir(parents=True, exist_ok=True)
        blob = write_layer(
            entries,
            self.root / f"new-{os.getpid()}-{threading.get_ident()}",
            mtime=mtime,
            level=self.level,
        )
        cached = self.get(blob.diff_id)
        if cached is not None:  # seen under another shape hint: the cached bytes win
            os.unlink(blob.path)
            blob = cached
        else:
            blob = self._keep(blob)
        _put_text(hint, blob.diff_id)
        return blob

    def _keep(self, blob: LayerBlob) -> LayerBlob:
        hexid = blob.diff_id.removeprefix("sha256:")
        final = self.root / f"{hexid}.tar.gz"
        os.replace(blob.path, final)
        _put_text(
            self.root / f"{hexid}.json",
            json.dumps({k: v for k, v in blob.__dict__.items() if k != "path"}, sort_keys=True),
        )
        return replace(blob, path=str(final))

    def layers(
        self,
        layers: list[list[Entry]],
        *,
        mtime: int = 0,
        workers: int = 2,
        done: Callable[[LayerBlob], None] | None = None,
    ) -> list[LayerBlob]:
        """``layer`` for each list of entries on ``workers`` processes (``procpool``: tar
        headers and small reads hold the GIL, so threads would share one core), the biggest
        first so no big one is left for last; results in input order, ``done(blob)`` called
        in this process as each is ready."""
        order = sorted(range(len(layers)), key=lambda i: -sum(e.size for e in layers[i]))
        root = str(self.root.parent)
        blobs = procpool.run_all(
            cached_layer,
            [(root, self.level, layers[i], mtime) for i in order],
            workers=workers,
            done=done,
        )
        by_index = dict(zip(order, blobs, strict=True))
        return [by_index[i] for i in range(len(layers))]


def cached_layer(root: str, level: int, entries: list[Entry], mtime: int) -> LayerBlob:
    """``BlobCache(root, level).layer(entries)``: a ``procpool`` job (a worker process)."""
    return BlobCache(Path(root), level=level).layer(entries, mtime=mtime)


def shape(entries: Iterable[Entry], mtime: int = 0) -> str:
    """A hex name for what a layer holds apart from file contents (paths, kinds, modes,
    owners, sizes, link targets, the hash of inline data): the ``BlobCache`` hint key."""
    digest = hashlib.sha256(f"{FORMAT}\0{mtime}".encode())
    for e in sorted(entries, key=lambda e: e.path):
        size = len(e.data) if e.data is not None else (e.size or _size(e))
        inline = hashlib.sha256(e.data).hexdigest() if e.data is not None else ""
        digest.update(
            f"\0{e.path}\0{e.kind}\0{e.mode}\0{e.uid}\0{e.gid}\0{e.linkname}"
            f"\0{size}\0{inline}".encode("utf-8", "surrogateescape")
        )
    return digest.hexdigest()


def _size(entry: Entry) -> int:
    return os.stat(entry.source).st_size if entry.kind == "file" and entry.source else 0


def _put_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(text)
    os.replace(tmp, path)
