"""Pinned Debian packages as layer entries, without dpkg, apt or root.

``images/base/packages.lock`` pins ``NAME=VERSION SHA256 URL`` per package; this module
parses it (pure), downloads each ``.deb`` once into a cache checking its sha256, and turns
the ``data.tar.*`` members into ``tarlayer.Entry`` values under the merged-``/usr`` layout
(``bin``, ``sbin``, ``lib*`` become ``usr/...``). Maintainer scripts are never run; file
modes come from the package, owners are root. Paths matching ``exclude.txt`` are left out.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx

from spawner.errors import LockstepError
from spawner.image.tarlayer import Entry

MERGED_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


@dataclass(frozen=True)
class DebPin:
    name: str
    version: str
    sha256: str
    url: str


@dataclass(frozen=True)
class Rule:
    package: str  # "" for every package
    pattern: str
    include: bool


def parse_lock(text: str, *, source: str = "packages.lock") -> list[DebPin]:
    """Parse ``NAME=VERSION SHA256 URL`` lines (``#`` comments); sorted by name."""
    pins = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3 or "=" not in parts[0] or len(parts[1]) != 64:
            raise LockstepError(
                f"{source}:{number}: expected 'NAME=VERSION SHA256 URL', got {raw!r}; "
                "regenerate it with images/base/lock.sh"
            )
        name, version = parts[0].split("=", 1)
        pins.append(DebPin(name, version, parts[1], parts[2]))
    return sorted(pins, key=lambda p: p.name)


def parse_rules(text: str) -> list[Rule]:
    """``[!][PKG:]GLOB`` lines; the last matching rule decides (``!`` keeps)."""
    rules = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        include = line.startswith("!")
        line = line.lstrip("!")
        package, sep, pattern = line.partition(":")
        if not sep or "/" in package:
            package, pattern = "", line
        rules.append(Rule(package, pattern, include))
    return rules


def excluded(rules: Sequence[Rule], package: str, path: str) -> bool:
    verdict = False
    for rule in rules:
        if rule.package in ("", package) and fnmatch.fnmatchcase(path, rule.pattern):
            verdict = not rule.include
    return verdict


def merged_usr(path: str) -> str:
    """``bin/bash`` -> ``usr/bin/bash`` (bookworm's merged /usr)."""
    head, _, rest = path.partition("/")
    return f"usr/{head}" + (f"/{rest}" if rest else "") if head in MERGED_DIRS else path


def fetch_deb(pin: DebPin, cache: Path, *, timeout: float = 120.0) -> Path:
    """The ``.deb`` for ``pin`` from the cache, downloading it when missing; sha256 checked."""
    dest = Path(cache) / f"{pin.sha256}.deb"
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        response = httpx.get(pin.url, timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise LockstepError(
            f"could not download {pin.url}: {exc}; check the Debian mirror"
        ) from exc
    if response.status_code != 200:
        raise LockstepError(
            f"{pin.url} answered {response.status_code}; the pinned {pin.name}={pin.version} "
            "may have left the mirror: run images/base/lock.sh to pin current versions"
        )
    found = hashlib.sha256(response.content).hexdigest()
    if found != pin.sha256:
        raise LockstepError(f"{pin.url}: sha256 {found} is not the pinned {pin.sha256}")
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    tmp.write_bytes(response.content)
    os.replace(tmp, dest)
    return dest


def _ar_members(data: bytes) -> dict[str, bytes]:
    if not data.startswith(b"!<arch>\n"):
        raise LockstepError("not a Debian package (no ar header)")
    members, pos = {}, 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        members[name] = data[pos + 60 : pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def _relative(name: str) -> str:
    return str(PurePosixPath("/", name).relative_to("/")) if name.strip("./") else "."


def deb_entries(deb: Path, package: str, rules: Sequence[Rule]) -> list[Entry]:
    """The files of one ``.deb`` as entries (hardlinks resolved to copies)."""
    members = _ar_members(Path(deb).read_bytes())
    data_name = next((n for n in members if n.startswith("data.tar")), None)
    if data_name is None:
        raise LockstepError(f"{deb}: no data.tar member")
    entries: dict[str, Entry] = {}
    with tarfile.open(fileobj=io.BytesIO(members[data_name]), mode="r:*") as tar:
        for member in tar.getmembers():
            path = merged_usr(_relative(member.name))
            if path == "." or excluded(rules, package, path):
                continue
            mode = member.mode & 0o7777
            if member.isdir():
                entries[path] = Entry(path, "dir", mode)
            elif member.issym():
                entries[path] = Entry(path, "symlink", 0o777, linkname=member.linkname)
            elif member.islnk():
                target = merged_usr(_relative(member.linkname))
                if target in entries:
                    entries[path] = Entry(path, "file", mode, data=entries[target].data)
            elif member.isfile():
                entries[path] = Entry(path, "file", mode, data=tar.extractfile(member).read())
    return list(entries.values())
