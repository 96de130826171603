"""Build records: what a build's inputs gave, so the same inputs are a no-op next time.

Each finished build is written twice, atomically: under the cache
(``<cache>/images/<key>.json``, found from any checkout) and beside the lock
(``build-record.json``, which sibling projects read to mount shared layers, and the spawn
form reads for when the image was built: ``built_at``, UTC). A record is
only trusted for the key (the build's inputs, ``assemble.image_key``) and the repository it
names. ``built_wheels`` lists each pip sdist the build built into a wheel (platform, name,
version, sdist URL and sha256, wheel file and sha256, backend), read from the staged
prefix's ``LOCKSTEP_BUILT.json`` files; ``lockstep sbom`` reads them back
(``recorded_builds``) only from a record of the same lock, and else from the image's own
``LOCKSTEP_BUILT.json`` records (``image_builds``). Plain files; no registry access
here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

LISTS = ("layer_digests", "platforms")
BUILT_AT = "built_at"
BUILT_WHEELS = "built_wheels"


def known(
    settings, record_path: Path, repo_name: str, key: str, *, fields: tuple[str, ...]
) -> dict | None:
    """The recorded build result for ``key`` in ``repo_name``, or None."""
    for path in (settings.cache_path("images", f"{key}.json"), record_path):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("key") == key and record.get("reference", "").startswith(repo_name + "@"):
            return {k: (tuple(v) if k in LISTS else v) for k, v in record.items() if k in fields}
    return None


def _same_digest(record_path: Path, digest: str) -> dict:
    """The record beside the lock when it is for ``digest``, else ``{}``."""
    try:
        old = json.loads(Path(record_path).read_text())
    except (OSError, ValueError):
        return {}
    return old if isinstance(old, dict) and digest and old.get("digest") == digest else {}


def built_at(record_path: Path, digest: str, now: str) -> str:
    """When ``digest`` was first built here: the time the record beside the lock already
    gives for that same digest, else ``now`` (a rebuild of the same inputs keeps it)."""
    return str(_same_digest(record_path, digest).get(BUILT_AT) or now)


def built_wheels(prefix: Path, platform: str) -> list[dict]:
    """Each sdist built into a wheel in the staged ``prefix`` (its ``LOCKSTEP_BUILT.json``,
    written by ``pipinstall``), as the build record lists it; sorted by name."""
    from spawner.lock.pipinstall import BUILT  # lazy: the hub imports this module

    found = []
    for path in sorted(Path(prefix).glob(f"lib/python*/site-packages/*.dist-info/{BUILT}")):
        found.append(built_entry(json.loads(path.read_text()), platform))
    return sorted(found, key=lambda b: (b["name"], b["platform"]))


def built_entry(data: dict, platform: str) -> dict:
    """One ``built_wheels`` entry from one ``LOCKSTEP_BUILT.json`` record; ``ValueError``
    (or ``KeyError``/``TypeError``) when the record lacks a field or names no wheel."""
    from packaging.utils import parse_wheel_filename

    name, version, _build, _tags = parse_wheel_filename(data["wheel"]["file"])
    return {
        "platform": platform,
        "name": str(name),
        "version": str(version),
        "sdist_url": data["sdist"]["url"],
        "sdist_sha256": data["sdist"]["sha256"],
        "wheel": data["wheel"]["file"],
        "wheel_sha256": data["wheel"]["sha256"],
        "backend": data["backend"],
    }


def image_builds(records: Iterable[dict], platform: str) -> dict[str, dict]:
    """sdist sha256 -> its ``built_wheels`` entry, from the ``LOCKSTEP_BUILT.json``
    records an image holds (``reader.ImageContents.built``); a damaged record is left out,
    so its package gets no built-wheel facts rather than wrong ones."""
    found = {}
    for data in records:
        try:
            entry = built_entry(data, platform)
        except (KeyError, TypeError, ValueError):
            continue
        found[entry["sdist_sha256"]] = entry
    return found


def recorded_builds(record_path: Path, lock_hash: str, platform: str) -> dict[str, dict]:
    """sdist sha256 -> its ``built_wheels`` entry for ``platform``, from the record beside
    a lock when that record is of the lock with ``lock_hash``; ``{}`` otherwise."""
    try:
        record = json.loads(Path(record_path).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or not lock_hash or record.get("lock_hash") != lock_hash:
        return {}
    return {
        b["sdist_sha256"]: b
        for b in record.get(BUILT_WHEELS) or []
        if isinstance(b, dict) and b.get("platform") == platform and b.get("sdist_sha256")
    }


def write(
    settings, record_path: Path, key: str, result: dict, built: list[dict] | None = None
) -> None:
    """Record ``result`` for ``key`` (less the per-run ``noop`` and ``bytes_uploaded``),
    with ``built_at`` (UTC; the spawn form shows it): kept from the record it replaces when
    the digest is the same, so an unchanged image keeps its first build time; and with
    ``built`` (``built_wheels``), kept likewise when a no-op build built nothing."""
    record = {"key": key, **result}
    record.pop("noop", None), record.pop("bytes_uploaded", None)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = str(record.get("digest", ""))
    record[BUILT_AT] = built_at(record_path, digest, now)
    old = (
        {}
        if built
        else _same_digest(record_path, digest)
        or _same_digest(settings.cache_path("images", f"{key}.json"), digest)
    )
    record[BUILT_WHEELS] = list(built or old.get(BUILT_WHEELS) or [])
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    for path in (settings.cache_path("images", f"{key}.json"), record_path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
