"""Build records: what a build's inputs gave, so the same inputs are a no-op next time.

Each finished build is written twice, atomically: under the cache
(``<cache>/images/<key>.json``, found from any checkout) and beside the lock
(``build-record.json``, which sibling projects read to mount shared layers, and the spawn
form reads for when the image was built: ``built_at``, UTC). A record is
only trusted for the key (the build's inputs, ``assemble.image_key``) and the repository it
names. Plain files; no registry access here.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

LISTS = ("layer_digests", "platforms")
BUILT_AT = "built_at"


def known(settings, record_path: Path, repo_name: str, key: str, *,
          fields: tuple[str, ...]) -> dict | None:
    """The recorded build result for ``key`` in ``repo_name``, or None."""
    for path in (settings.cache_path("images", f"{key}.json"), record_path):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("key") == key and record.get("reference", "").startswith(repo_name + "@"):
            return {k: (tuple(v) if k in LISTS else v) for k, v in record.items() if k in fields}
    return None


def built_at(record_path: Path, digest: str, now: str) -> str:
    """When ``digest`` was first built here: the time the record beside the lock already
    gives for that same digest, else ``now`` (a rebuild of the same inputs keeps it)."""
    try:
        old = json.loads(Path(record_path).read_text())
    except (OSError, ValueError):
        return now
    if isinstance(old, dict) and old.get("digest") == digest and old.get(BUILT_AT):
        return str(old[BUILT_AT])
    return now


def write(settings, record_path: Path, key: str, result: dict) -> None:
    """Record ``result`` for ``key`` (less the per-run ``noop`` and ``bytes_uploaded``),
    with ``built_at`` (UTC; the spawn form shows it): kept from the record it replaces when
    the digest is the same, so an unchanged image keeps its first build time."""
    record = {"key": key, **result}
    record.pop("noop", None), record.pop("bytes_uploaded", None)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    record[BUILT_AT] = built_at(record_path, str(record.get("digest", "")), now)
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    for path in (settings.cache_path("images", f"{key}.json"), record_path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
