"""Small lockstep-shaped images pushed straight to a registry, for promotion tests and benchmarks.

An image here has what promotion and ``verify`` look at, and nothing to run: a
``/opt/env`` with one file per package and its ``conda-meta`` record (``paths_data`` with
sha256), an optional filler layer (to vary the image size), and a config labelled like a
lockstep build (``org.lockstep.project``, ``org.lockstep.lock-hash`` = the lock's hash as
the image builder computes it). ``write_lock`` writes the matching ``conda-lock.yml``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from spawner.image import oci
from spawner.image.registry import RegistryClient

URL = "https://conda.example.org/test/linux-64"


@dataclass(frozen=True)
class Pkg:
    name: str
    version: str
    build: str = "h_0"

    @property
    def fn(self) -> str:
        return f"{self.name}-{self.version}-{self.build}.conda"

    @property
    def sha256(self) -> str:  # a stand-in for the archive's hash
        return hashlib.sha256(self.fn.encode()).hexdigest()

    @property
    def content(self) -> bytes:
        return f"{self.name} {self.version}\n".encode()


PACKAGES = (Pkg("alpha", "1.0"), Pkg("beta", "2.1"), Pkg("python", "3.11.7"))


def write_lock(path: Path, packages=PACKAGES) -> Path:
    """A conda-lock v1 file locking ``packages`` for linux-64."""
    lines = [
        "version: 1",
        "metadata:",
        "  content_hash:",
        "    linux-64: '" + "0" * 64 + "'",
        "  channels:",
        "  - url: conda-forge",
        "    used_env_vars: []",
        "  platforms:",
        "  - linux-64",
        "  sources:",
        "  - environment.yml",
        "package:",
    ]
    for p in packages:
        lines += [
            f"- name: {p.name}",
            f"  version: '{p.version}'",
            "  manager: conda",
            "  platform: linux-64",
            "  dependencies: {}",
            f"  url: {URL}/{p.fn}",
            "  hash:",
            f"    md5: {hashlib.md5(p.fn.encode()).hexdigest()}",
            f"    sha256: {p.sha256}",
            "  category: main",
            "  optional: false",
        ]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def meta_record(p: Pkg, content: bytes | None = None) -> dict:
    path = f"share/{p.name}/VERSION"
    return {
        "name": p.name,
        "version": p.version,
        "build": p.build,
        "build_number": 0,
        "fn": p.fn,
        "url": f"{URL}/{p.fn}",
        "sha256": p.sha256,
        "channel": URL,
        "files": [path],
        "paths_data": {
            "paths_version": 1,
            "paths": [
                {
                    "_path": path,
                    "path_type": "hardlink",
                    "sha256": hashlib.sha256(content or p.content).hexdigest(),
                    "size_in_bytes": len(content or p.content),
                }
            ],
        },
    }


def _tar(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            tar.addfile(info, io.BytesIO(files[name]))
    return raw.getvalue()


def env_files(
    packages=PACKAGES,
    *,
    tamper: dict[str, bytes] | None = None,
    meta_overrides: dict[str, dict] | None = None,
) -> dict[str, bytes]:
    """``opt/env`` files: each package's file and conda-meta record (optionally altered)."""
    files = {}
    for p in packages:
        files[f"opt/env/share/{p.name}/VERSION"] = (tamper or {}).get(p.name, p.content)
        record = {**meta_record(p), **(meta_overrides or {}).get(p.name, {})}
        files[f"opt/env/conda-meta/{p.name}-{p.version}-{p.build}.json"] = json.dumps(
            record, indent=2, sort_keys=True
        ).encode()
    return files


def push_image(
    client: RegistryClient,
    repo: str,
    *,
    project: str,
    lock_hash: str,
    files: dict[str, bytes],
    filler_bytes: int = 0,
    tag: str | None = "dev",
    salt: str = "",
) -> str:
    """Push an image of ``files`` (+ a random filler layer) to ``repo``; returns its digest."""
    layers = [_tar(files)]
    if filler_bytes:
        layers.append(_tar({"opt/filler/blob": os.urandom(filler_bytes)}))
    if salt:
        layers.append(_tar({"opt/salt": salt.encode()}))
    blobs = [gzip.compress(t, compresslevel=1, mtime=0) for t in layers]
    runtime = oci.project_runtime(project=project, lock_hash=lock_hash, base="none")
    config = oci.canonical_json(
        oci.image_config(
            runtime=runtime,
            diff_ids=[oci.sha256_digest(t) for t in layers],
            history=["synthetic"] * len(layers),
            created=oci.created_at(0),
        )
    )
    descriptors = []
    for blob in blobs:
        digest = oci.sha256_digest(blob)
        client.ensure_blob(repo, digest, blob)
        descriptors.append(oci.Descriptor(oci.MEDIA_LAYER, digest, len(blob)))
    config_digest = oci.sha256_digest(config)
    client.ensure_blob(repo, config_digest, config)
    manifest = oci.canonical_json(
        oci.image_manifest(
            config=oci.Descriptor(oci.MEDIA_CONFIG, config_digest, len(config)), layers=descriptors
        )
    )
    digest = client.put_manifest(repo, oci.sha256_digest(manifest), manifest, oci.MEDIA_MANIFEST)
    if tag:
        client.put_manifest(repo, tag, manifest, oci.MEDIA_MANIFEST)
    return digest
