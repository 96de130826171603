"""Earlier verify results, remembered by everything that decides them.

An image pinned by digest is content-addressed, so what ``check_image`` finds for it is a
pure function of (manifest digest, the lock file's bytes, platform, whether files are
hashed, this verifier's format ``VERIFIER_FORMAT``). ``memo_key`` hashes exactly those; an
entry (``<cache_dir>/verified/<key>.json``) holds what the check found, passing or failing
(both are deterministic), and the UTC time it was computed.

Guarantees: only a result computed by a real read of the image is written (``remember``);
writes are atomic (a temporary file, then ``os.replace``), so a reader sees a whole entry
or none; ``recall`` never raises: a missing, unreadable, corrupt or foreign entry (another
key or format) is a miss and the image is read again. A reference by tag has no key
(``pinned_digest`` is None) and is always checked afresh.

Must not: read the registry or the image, or decide anything about the image (that is
``spawner.verify.check``); ``memo_key`` and the entry codecs are pure. Deleting the
folder is always safe: the next check reads the image again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

from spawner.verify.diff import Difference, Kind

VERIFIER_FORMAT = "lockstep-verify/1"
"""Bump when the verifier's checks or its result change: every earlier entry then misses."""

FOLDER = "verified"


@dataclass(frozen=True)
class Remembered:
    """What one check of an image against a lock found (an entry's payload)."""

    packages: int  # in the lock
    installed: int  # in the image's conda-meta
    differences: tuple[Difference, ...]
    label: str  # the image's org.lockstep.lock-hash label
    lock_hashes: tuple[str, ...]  # the lock's hashes, as lock_decision compares them
    checked_at: str = ""  # UTC, when the image was read


def pinned_digest(reference: str) -> str | None:
    """The ``sha256:...`` digest ``reference`` is pinned to, or None (a tag, or not a
    reference at all: the real check reports that)."""
    from spawner.image.oci import parse_reference

    try:
        digest = parse_reference(reference).digest
    except ValueError:
        return None
    return digest or None


def memo_key(
    *, digest: str, lock_bytes: bytes, platform: str, files: bool, version: str = VERIFIER_FORMAT
) -> str:
    """sha256 hex of the inputs that decide a check; any change gives another key."""
    canonical = json.dumps(
        [version, digest, hashlib.sha256(lock_bytes).hexdigest(), platform, bool(files)],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def to_entry(key: str, found: Remembered) -> dict:
    """The JSON object stored for ``key``."""
    return {
        "format": VERIFIER_FORMAT,
        "key": key,
        "checked_at": found.checked_at,
        "packages": found.packages,
        "installed": found.installed,
        "label": found.label,
        "lock_hashes": list(found.lock_hashes),
        "differences": [d.to_json() for d in found.differences],
    }


def _difference(item) -> Difference:
    if not isinstance(item, dict) or item.get("kind") not in get_args(Kind):
        raise ValueError("not a difference")
    package, detail = item.get("package"), item.get("detail")
    if not isinstance(package, str) or not isinstance(detail, str):
        raise ValueError("not a difference")
    return Difference(package, item["kind"], detail)


def from_entry(key: str, data) -> Remembered | None:
    """The result ``data`` holds for ``key``; None unless it is a whole entry of this key
    and format."""
    try:
        if data["format"] != VERIFIER_FORMAT or data["key"] != key:
            return None
        if not isinstance(data["lock_hashes"], list) or not isinstance(data["differences"], list):
            return None
        counts = (data["packages"], data["installed"])
        texts = (data["label"], data["checked_at"], *data["lock_hashes"])
        if not all(type(n) is int for n in counts) or not all(isinstance(t, str) for t in texts):
            return None
        differences = tuple(_difference(d) for d in data["differences"])
        return Remembered(
            counts[0],
            counts[1],
            differences,
            data["label"],
            tuple(data["lock_hashes"]),
            data["checked_at"],
        )
    except (KeyError, TypeError, ValueError):
        return None


def entry_path(settings, key: str) -> Path:
    return settings.cache_path(FOLDER, f"{key}.json")


def recall(settings, key: str) -> Remembered | None:
    """The remembered result for ``key``, or None (absent, unreadable or corrupt)."""
    try:
        data = json.loads(entry_path(settings, key).read_bytes())
    except (OSError, ValueError):
        return None
    return from_entry(key, data)


def remember(settings, key: str, found: Remembered) -> None:
    """Store ``found`` for ``key`` atomically; a cache that cannot be written is no error
    (the next check reads the image again)."""
    if not found.checked_at:
        found = replace(found, checked_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    path = entry_path(settings, key)
    text = json.dumps(to_entry(key, found), sort_keys=True) + "\n"
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except OSError:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
