"""CycloneDX 1.5 JSON software bill of materials from a project's lock, pure.

``build_sbom`` turns the locked packages of one platform into a CycloneDX 1.5 document:
one ``library`` component per package with its name, version, purl, SHA-256 (and MD5)
hash, download URL and, where the package metadata carries one, its license; the
``dependencies`` graph from the lock; and ``metadata.component`` naming what the bill is
for (a project's image or a lock file).

Guarantees
----------
- Deterministic: components, hashes, dependencies and licenses are sorted; the serial
  number is a UUID5 of the content, so the same lock gives byte-identical output (pass
  ``timestamp`` to stamp it, which then changes the serial too).
- purls: ``pkg:conda/<channel>/<name>@<version>?build=<build>&subdir=<subdir>`` for conda
  packages (the channel named as ``c.Lockstep.channel_urls`` names it, else the last
  segment of the channel URL), ``pkg:pypi/<name>@<version>`` for pip packages.
- A pip sdist the build built into a wheel (``built``, from the build record) keeps the
  sdist as its ``hashes`` and ``distribution`` reference (what the lock pins and what was
  downloaded) and gets ``properties`` for what the image holds:
  ``org.lockstep:built-wheel`` (file name), ``org.lockstep:built-wheel-sha256`` and
  ``org.lockstep:build-backend``. A second SHA-256 in ``hashes`` would leave a reader
  unable to tell which file it is of; CycloneDX 1.5 has no field for a built artifact
  without a URL of its own, so the properties name it.
- Licenses: an SPDX id (``{"license": {"id": ...}}``) when the text is a well-known id,
  an ``expression`` when it combines ids with AND/OR/WITH, and ``{"license": {"name":
  ...}}`` otherwise, so the document always validates against the 1.5 schema.

It must not read files, talk to an engine or look at the clock; ``spawner.commands.sbom``
gathers the lock and the license texts and calls it.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from spawner.lock.package import LockedPackage, packages_of

SPEC_VERSION = "1.5"
SCHEMA_URL = "http://cyclonedx.org/schema/bom-1.5.schema.json"
SERIAL_NAMESPACE = uuid.UUID("6f1f3d0e-2b8c-5a7e-9c41-1a0c5e3d7b21")
_EXPRESSION_RE = re.compile(r"\s(AND|OR|WITH)\s")
# Common SPDX license ids (the 1.5 schema refuses an ``id`` outside the SPDX list, so any
# other text goes into ``name``); sorted for reading.
SPDX_IDS = frozenset({
    "0BSD", "AFL-2.1", "AGPL-3.0-only", "AGPL-3.0-or-later", "Apache-1.1", "Apache-2.0",
    "Artistic-2.0", "BSD-1-Clause", "BSD-2-Clause", "BSD-3-Clause", "BSD-4-Clause",
    "BSL-1.0", "bzip2-1.0.6", "CC-BY-4.0", "CC0-1.0", "CDDL-1.0", "curl", "EPL-1.0",
    "EPL-2.0", "FTL", "GPL-2.0-only", "GPL-2.0-or-later", "GPL-3.0-only",
    "GPL-3.0-or-later", "HPND", "ICU", "IJG", "ISC", "LGPL-2.0-only", "LGPL-2.0-or-later",
    "LGPL-2.1-only", "LGPL-2.1-or-later", "LGPL-3.0-only", "LGPL-3.0-or-later", "libpng",
    "Libpng", "MIT", "MIT-0", "MPL-1.1", "MPL-2.0", "NCSA", "OpenSSL", "PSF-2.0", "Python-2.0",
    "Unicode-DFS-2016", "Unlicense", "X11", "Zlib", "ZPL-2.1",
})


@dataclass(frozen=True)
class Subject:
    """What the bill describes: a project image (by digest) or a lock file."""

    name: str
    version: str  # the lock hash, or the image digest
    kind: str = "container"  # CycloneDX component type: container | application
    properties: tuple[tuple[str, str], ...] = field(default=())


def packages_from_lock(lockfile: Any, platform: str) -> list[LockedPackage]:
    """The ``platform`` packages of a parsed lock (conda-lock's ``Lockfile`` model, as
    ``spawner.lock.condalock.read_lockfile`` returns it), virtual packages left out.

    Raises ``ValueError`` naming the platforms the lock has when ``platform`` is not one.
    """
    platforms = sorted(lockfile.metadata.platforms)
    if platform not in platforms or not any(p.platform == platform for p in lockfile.package):
        raise ValueError(
            f"the lock has no packages for platform {platform!r}; it has: "
            f"{', '.join(platforms) or '(none)'}"
        )
    return [p for p in packages_of(lockfile, platform)
            if not (p.manager == "conda" and p.name.startswith("__"))]


def channel_name(url: str, channels: Mapping[str, str]) -> str:
    """The channel a package URL comes from, named as the site names it.

    ``channels`` maps channel names to base URLs (``c.Lockstep.channel_urls``); the
    longest matching base wins. Otherwise the segment before the subdir is used
    (``https://conda.anaconda.org/conda-forge/noarch/x.conda`` -> ``conda-forge``).
    """
    base = url.rsplit("/", 2)[0]
    matches = [(len(u.rstrip("/")), n) for n, u in channels.items()
               if base == u.rstrip("/") or base.startswith(u.rstrip("/") + "/")]
    if matches:
        return max(matches)[1]
    return base.rstrip("/").rsplit("/", 1)[-1] or "unknown"


def purl(package: LockedPackage, channels: Mapping[str, str] | None = None) -> str:
    """The package URL of ``package`` (see module docstring)."""
    version = quote(package.version, safe=".+!-_~")
    if package.manager == "pip":
        return f"pkg:pypi/{quote(package.name.lower(), safe='.-_')}@{version}"
    channel = quote(channel_name(package.url, channels or {}), safe=".-_")
    build, subdir = quote(package.build, safe=".-_"), quote(package.subdir, safe="-_")
    qualifiers = f"build={build}&subdir={subdir}"
    return f"pkg:conda/{channel}/{quote(package.name, safe='.-_')}@{version}?{qualifiers}"


def license_entry(text: str) -> list[dict[str, Any]]:
    """The CycloneDX ``licenses`` array for one license text ([] when empty)."""
    text = " ".join(text.split())
    if not text:
        return []
    if text in SPDX_IDS:
        return [{"license": {"id": text}}]
    if _EXPRESSION_RE.search(text) and all(
        tok in SPDX_IDS for tok in re.split(r"\s+(?:AND|OR|WITH)\s+|[()]", text) if tok.strip()
    ):
        return [{"expression": text}]
    return [{"license": {"name": text}}]


def component(
    package: LockedPackage, *, channels: Mapping[str, str], license_text: str = "",
    built: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One CycloneDX component for ``package``; ``built``: the build record's entry for a
    pip sdist built into a wheel (``wheel``, ``wheel_sha256``, ``backend``)."""
    ref = purl(package, channels)
    hashes = [{"alg": "SHA-256", "content": package.sha256}] if package.sha256 else []
    if package.md5:
        hashes.append({"alg": "MD5", "content": package.md5})
    item: dict[str, Any] = {
        "type": "library",
        "bom-ref": ref,
        "name": package.name,
        "version": package.version,
        "purl": ref,
        "hashes": hashes,
        "externalReferences": [{"type": "distribution", "url": package.url}],
    }
    licenses = license_entry(license_text)
    if licenses:
        item["licenses"] = licenses
    if package.manager == "conda":
        item["properties"] = [
            {"name": "org.lockstep:build", "value": package.build},
            {"name": "org.lockstep:subdir", "value": package.subdir},
        ]
    elif built:
        item["properties"] = [
            {"name": "org.lockstep:build-backend", "value": str(built["backend"])},
            {"name": "org.lockstep:built-wheel", "value": str(built["wheel"])},
            {"name": "org.lockstep:built-wheel-sha256", "value": str(built["wheel_sha256"])},
        ]
    return item


def _dependencies(packages: Sequence[LockedPackage], refs: Mapping[str, str]) -> list[dict]:
    graph = []
    for package in packages:
        key = f"{package.manager}:{package.name}"
        depends = sorted({refs[f"{package.manager}:{d}"] for d in package.dependencies
                          if f"{package.manager}:{d}" in refs}
                         | ({refs[f"conda:{d}"] for d in package.dependencies
                             if package.manager == "pip" and f"conda:{d}" in refs}))
        graph.append({"ref": refs[key], "dependsOn": depends})
    return sorted(graph, key=lambda d: d["ref"])


def build_sbom(
    *,
    packages: Iterable[LockedPackage],
    subject: Subject,
    channels: Mapping[str, str],
    licenses: Mapping[str, str],
    tool_version: str = "",
    timestamp: str | None = None,
    built: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """The CycloneDX 1.5 document for ``packages``.

    Parameters
    ----------
    licenses
        License text per package, keyed by ``LockedPackage.stem`` (conda) or name (pip);
        a package without an entry gets no ``licenses``.
    timestamp
        ISO 8601 time to record in ``metadata.timestamp``; ``None`` leaves it out.
    built
        Built wheels keyed by the sdist's sha256 (``buildrecords.recorded_builds``): a pip
        package whose locked sha256 is one gets the built wheel's properties.
    """
    ordered = sorted(packages, key=lambda p: (p.manager, p.name, p.version, p.url))
    components = [
        component(p, channels=channels,
                  license_text=licenses.get(p.stem if p.manager == "conda" else p.name, ""),
                  built=(built or {}).get(p.sha256) if p.manager == "pip" else None)
        for p in ordered
    ]
    refs = {f"{p.manager}:{p.name}": c["bom-ref"] for p, c in zip(ordered, components, strict=True)}
    subject_ref = f"lockstep:{subject.name}@{subject.version}"
    metadata: dict[str, Any] = {
        "tools": {"components": [{"type": "application", "name": "lockstep",
                                  **({"version": tool_version} if tool_version else {})}]},
        "component": {
            "type": subject.kind, "bom-ref": subject_ref, "name": subject.name,
            "version": subject.version,
            **({"properties": [{"name": k, "value": v} for k, v in sorted(subject.properties)]}
               if subject.properties else {}),
        },
    }
    if timestamp:
        metadata["timestamp"] = timestamp
    dependencies = [{"ref": subject_ref, "dependsOn": sorted(c["bom-ref"] for c in components)}]
    dependencies += _dependencies(ordered, refs)
    bom: dict[str, Any] = {
        "$schema": SCHEMA_URL,
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": metadata,
        "components": components,
        "dependencies": dependencies,
    }
    digest = hashlib.sha256(json.dumps(bom, sort_keys=True).encode()).hexdigest()
    bom["serialNumber"] = f"urn:uuid:{uuid.uuid5(SERIAL_NAMESPACE, digest)}"
    return bom


def dumps(bom: Mapping[str, Any]) -> str:
    """The document as stable, indented JSON text (trailing newline)."""
    return json.dumps(bom, indent=2, sort_keys=True) + "\n"
