"""Which PyPI distributions a conda solution already provides, read offline.

Guarantees: the names and versions come from the conda packages' own ``*.dist-info/METADATA``
(or ``*.egg-info/PKG-INFO``), read from the verified archives in the package cache, and
from the site's mapping file (``c.Lockstep.pypi_mapping``, conda-lock's
``--pypi_to_conda_lookup_file`` format); never from the network beyond fetching the
locked archives themselves. What an archive provides is cached by its sha256, so a warm
lock reads no archive. Only packages that depend on ``python`` (and ``pip``) are read:
nothing else can install into ``site-packages``. It must not import rattler or conda-lock.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from email.parser import HeaderParser
from pathlib import Path

from packaging.utils import canonicalize_name

from spawner.errors import LockstepError
from spawner.lock.fetch import Archive, fetch_archives

META_RE = re.compile(r"(^|/)site-packages/[^/]+\.(dist-info/METADATA|egg-info/PKG-INFO)$")


def read_mapping(path: Path | None) -> dict[str, str]:
    """conda name -> PyPI name from a conda-lock lookup file (``{pypi: {conda_name: ..}}``)."""
    if path is None:
        return {}
    path = Path(path).expanduser()
    try:
        text = path.read_text()
        import yaml

        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError) as exc:
        raise LockstepError(
            f"c.Lockstep.pypi_mapping = {str(path)!r} cannot be read ({exc}); point it at a "
            "conda-lock lookup file, e.g. {\"pyyaml\": {\"conda_name\": \"pyyaml\", "
            "\"pypi_name\": \"pyyaml\"}}."
        ) from None
    result = {}
    for pypi, entry in (data or {}).items():
        conda = entry.get("conda_name") if isinstance(entry, dict) else entry
        if isinstance(conda, str) and conda:
            result[conda] = canonicalize_name(
                entry.get("pypi_name", pypi) if isinstance(entry, dict) else pypi
            )
    return result


def _may_provide(record: Mapping) -> bool:
    if record["name"] == "pip":
        return True
    return any(str(d).split()[0] in ("python", "python_abi") for d in record.get("depends", []))


def provided(
    records: Sequence[Mapping],
    *,
    cache_dir: Path,
    mirrors: Mapping[str, str],
    mapping: Mapping[str, str],
) -> dict[str, tuple[str, str]]:
    """PyPI name -> (version, conda package name) for one platform's solved records."""
    cache = Path(cache_dir) / "pypi-dists"
    found: dict[str, tuple[str, str]] = {}
    missing = []
    for record in records:
        if not _may_provide(record):
            continue
        entry = cache / f"{record['sha256']}.json"
        try:
            dists = json.loads(entry.read_text())
        except (OSError, ValueError):
            missing.append(record)
            continue
        found.update({n: (v, record["name"]) for n, v in dists})
    if missing:
        archives = [
            Archive(r["name"], r["version"], r["build"], r["url"], r["sha256"], r.get("md5") or "")
            for r in missing
        ]
        for fetched, record in zip(
            fetch_archives(archives, cache_dir=cache_dir, mirrors=dict(mirrors)), missing,
            strict=True,
        ):
            dists = archive_dists(fetched.path)
            _write(cache / f"{record['sha256']}.json", dists)
            found.update({n: (v, record["name"]) for n, v in dists})
    for record in records:
        name = mapping.get(record["name"])
        if name and name not in found:
            found[name] = (record["version"], record["name"])
    return dict(sorted(found.items()))


def _write(path: Path, dists: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    with os.fdopen(fd, "w") as handle:
        json.dump(sorted(dists), handle)
    os.replace(tmp, path)


def archive_dists(path: Path) -> list[tuple[str, str]]:
    """(canonical PyPI name, version) for every dist-info/egg-info in a conda archive."""
    path = Path(path)
    dists = []
    for text in _metadata_texts(path):
        headers = HeaderParser().parsestr(text)
        if headers.get("Name") and headers.get("Version"):
            dists.append((canonicalize_name(headers["Name"]), headers["Version"].strip()))
    return sorted(set(dists))


def _metadata_texts(path: Path):
    if path.name.endswith(".tar.bz2"):
        with tarfile.open(path, "r:bz2") as tar:
            yield from _from_tar(tar)
        return
    import zstandard

    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if member.startswith("pkg-") and member.endswith(".tar.zst"):
                with archive.open(member) as raw:
                    reader = zstandard.ZstdDecompressor().stream_reader(raw)
                    with tarfile.open(fileobj=reader, mode="r|") as tar:
                        yield from _from_tar(tar)


def _from_tar(tar: tarfile.TarFile):
    for member in tar:
        if member.isfile() and META_RE.search(member.name):
            handle = tar.extractfile(member)
            if handle is not None:
                yield handle.read().decode("utf-8", errors="replace")
