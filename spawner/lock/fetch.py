"""Fetch package archives into a content-addressed cache, verifying every sha256.

Guarantees: an archive handed to the installer has exactly the sha256 the lock names,
whatever its URL scheme (rattler checks no hash for ``file://`` URLs, so lockstep checks
all of them itself); a mismatch raises ``ChecksumError`` naming the package, the expected
and the actual hash, and nothing unverified is left in the cache. A cached archive is
re-hashed on every use. Mirrors rewrite only where an archive is fetched from: the lock
keeps its URLs. This module must not import rattler or conda-lock.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from spawner.errors import LockstepError
from spawner.lock.policy import ARCHIVE_RE, SHA256_RE

CHUNK = 1 << 20
RETRIES = 3


class ChecksumError(LockstepError):
    """An archive whose sha256 is not the one the lock names."""


class FetchError(LockstepError):
    """An archive that could not be fetched."""


@dataclass(frozen=True)
class Archive:
    """One package archive as a lock pins it."""

    name: str
    version: str
    build: str
    url: str
    sha256: str
    md5: str = ""

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def label(self) -> str:
        return f"{self.name} {self.version} ({self.build})"


@dataclass(frozen=True)
class Fetched:
    archive: Archive
    path: Path
    downloaded: bool


def mirrored_url(url: str, mirrors: Mapping[str, str]) -> str:
    """``url`` with its longest matching mirror prefix replaced (pure)."""
    matches = [p for p in mirrors if url.startswith(p.rstrip("/") + "/") or url == p]
    if not matches:
        return url
    prefix = max(matches, key=len)
    return str(mirrors[prefix]).rstrip("/") + url[len(prefix.rstrip("/")) :]


def cache_path(cache_dir: Path, archive: Archive) -> Path:
    """Where a verified archive lives: ``<cache>/archives/<sha256>/<file name>``.

    Both parts come from the lock, so both are checked here too (the lock reader checks
    them first): a ``sha256`` of ``../../x`` never becomes a path.
    """
    if not archive.sha256:
        raise ChecksumError(
            f"{archive.label}: the lock has no sha256 for {archive.url}, so lockstep cannot "
            "verify it; re-create the lock with `lockstep lock`."
        )
    if not SHA256_RE.match(archive.sha256):
        raise ChecksumError(
            f"{archive.label}: field 'sha256' is {archive.sha256!r}, not 64 lowercase hex "
            "digits; re-create the lock with `lockstep lock`. Nothing was fetched."
        )
    if not ARCHIVE_RE.match(archive.file_name):
        raise FetchError(
            f"{archive.label}: the file name in {archive.url!r} is not NAME-VERSION-BUILD.conda "
            "(or .tar.bz2); re-create the lock with `lockstep lock`. Nothing was fetched."
        )
    return Path(cache_dir) / "archives" / archive.sha256 / archive.file_name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_archives(
    archives: Sequence[Archive],
    *,
    cache_dir: Path,
    mirrors: Mapping[str, str],
    jobs: int = 8,
    timeout: float = 120,
    on_done: Callable[[Fetched], None] | None = None,
) -> list[Fetched]:
    """Make every archive present and verified in the cache, in the order given.

    Every archive's cache path is checked before the first one is fetched; ``on_done``
    sees each archive as it is ready (in the order they finish), for progress.
    """
    for archive in archives:
        cache_path(cache_dir, archive)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [
            pool.submit(ensure_archive, a, cache_dir=cache_dir, mirrors=mirrors, timeout=timeout)
            for a in archives
        ]
        if on_done is not None:
            for future in as_completed(futures):
                on_done(future.result())
        return [f.result() for f in futures]


def ensure_archive(
    archive: Archive, *, cache_dir: Path, mirrors: Mapping[str, str], timeout: float = 120
) -> Fetched:
    """One archive, from the cache when its hash still checks out, else fetched."""
    path = cache_path(cache_dir, archive)  # checks sha256 and file name first
    if path.is_file():
        if sha256_of(path) == archive.sha256:
            return Fetched(archive, path, downloaded=False)
        path.unlink()  # a damaged cache entry: fetch it again
    path.parent.mkdir(parents=True, exist_ok=True)
    source = mirrored_url(archive.url, mirrors)
    fd, tmp_name = tempfile.mkstemp(prefix=".part-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            actual = _copy(source, out, timeout=timeout, label=archive.label)
        if actual != archive.sha256:
            where = source if source == archive.url else f"{source} (mirror of {archive.url})"
            raise ChecksumError(
                f"{archive.label}: sha256 mismatch for {where}: the lock expects "
                f"{archive.sha256}, the archive has {actual}. The file changed after the lock "
                "was written, or the mirror serves a different file; nothing was installed. "
                "If the new file is intended, re-lock with `lockstep lock`."
            )
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return Fetched(archive, path, downloaded=True)


def _copy(url: str, out, *, timeout: float, label: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return _copy_file(Path(unquote(parsed.path)), out, label=label)
    if parsed.scheme in ("http", "https"):
        return _download(url, out, timeout=timeout, label=label)
    raise FetchError(f"{label}: cannot fetch {url}: only https://, http:// and file:// URLs work.")


def _copy_file(path: Path, out, *, label: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise FetchError(
            f"{label}: cannot read {path}: {exc.strerror}; is the channel there?"
        ) from None
    return digest.hexdigest()


def _download(url: str, out, *, timeout: float, label: str) -> str:
    import httpx

    last: Exception | None = None
    for attempt in range(RETRIES):
        out.seek(0)
        out.truncate()
        digest = hashlib.sha256()
        try:
            with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            return digest.hexdigest()
        except httpx.HTTPStatusError as exc:
            last = exc
            if exc.response.status_code < 500:
                break
        except httpx.TransportError as exc:
            last = exc
        if attempt + 1 < RETRIES:
            time.sleep(0.5 * 2**attempt)
    raise FetchError(
        f"{label}: could not download {url} ({last}); check the URL, the network, or "
        "c.Lockstep.mirrors."
    )
