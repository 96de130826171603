"""Pure builders for OCI image configs, manifests and references.

Guarantees: every builder is a pure function of its arguments; JSON is serialised
canonically (sorted keys, no spaces, UTF-8) so a digest is a function of content only.
Manifests are OCI image manifests (``application/vnd.oci.image.manifest.v1+json``) with
gzip layers, which Docker 20.10+, containerd and Kubernetes pull. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from spawner.labels import BASE, CUDA, JUPYTERLAB, LOCK_HASH, PROJECT
from spawner.settings import ENV_PREFIX

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MANIFEST_TYPES = (
    MEDIA_MANIFEST,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_INDEX,
    "application/vnd.docker.distribution.manifest.list.v2+json",
)

HOME = "/home/jovyan"
USER = "1000:100"
PATH = f"{ENV_PREFIX}/bin:/usr/local/bin:/usr/bin:/bin"
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def canonical_json(obj: object) -> bytes:
    """Sorted keys, compact separators, UTF-8: the bytes lockstep hashes and pushes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def created_at(epoch: int = 0) -> str:
    """RFC 3339 time for ``epoch`` seconds (``SOURCE_DATE_EPOCH``); 0 gives 1970-01-01T00:00:00Z."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not DIGEST_RE.match(self.digest):
            raise ValueError(f"descriptor digest {self.digest!r} is not sha256:<64 hex>")

    def to_json(self) -> dict:
        out: dict = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        return out


@dataclass(frozen=True)
class RuntimeSpec:
    """What the image runs and as whom: the config fields apart from layers and history."""

    user: str = USER
    workdir: str = HOME
    env: Mapping[str, str] = field(default_factory=dict)
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    exposed_ports: tuple[str, ...] = ()
    stop_signal: str = ""


def project_runtime(
    *, project: str, lock_hash: str, base: str, cuda: str = "", jupyterlab: str = ""
) -> RuntimeSpec:
    """The runtime every lockstep project image has: jovyan, /opt/env first on PATH; the
    ``CUDA`` label when the lock states a CUDA requirement, the ``JUPYTERLAB`` label (its
    version) when the lock installs JupyterLab for this image's platform."""
    labels = {PROJECT: project, LOCK_HASH: lock_hash, BASE: base}
    if cuda:
        labels[CUDA] = cuda
    if jupyterlab:
        labels[JUPYTERLAB] = jupyterlab
    return RuntimeSpec(
        env={
            "CONDA_PREFIX": ENV_PREFIX,
            "HOME": HOME,
            "LANG": "C.UTF-8",
            "PATH": PATH,
            "SHELL": "/bin/bash",
        },
        entrypoint=("/usr/bin/tini", "-g", "--"),
        cmd=("jupyterhub-singleuser",),
        labels=labels,
        exposed_ports=("8888/tcp",),
    )


def image_config(
    *,
    runtime: RuntimeSpec,
    diff_ids: Sequence[str],
    history: Sequence[str],
    created: str,
    architecture: str = "amd64",
) -> dict:
    """An OCI image config. ``history`` gives one ``created_by`` text per layer, in order."""
    if len(history) != len(diff_ids):
        raise ValueError(f"{len(history)} history entries for {len(diff_ids)} layers")
    config: dict = {
        "User": runtime.user,
        "WorkingDir": runtime.workdir,
        "Env": [f"{k}={v}" for k, v in sorted(runtime.env.items())],
    }
    if runtime.entrypoint:
        config["Entrypoint"] = list(runtime.entrypoint)
    if runtime.cmd:
        config["Cmd"] = list(runtime.cmd)
    if runtime.labels:
        config["Labels"] = dict(sorted(runtime.labels.items()))
    if runtime.exposed_ports:
        config["ExposedPorts"] = {port: {} for port in sorted(runtime.exposed_ports)}
    if runtime.stop_signal:
        config["StopSignal"] = runtime.stop_signal
    return {
        "architecture": architecture,
        "os": "linux",
        "created": created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created": created, "created_by": text} for text in history],
    }


def image_manifest(
    *,
    config: Descriptor,
    layers: Sequence[Descriptor],
    annotations: Mapping[str, str] | None = None,
) -> dict:
    """An OCI image manifest for a config and its (compressed) layers, bottom first."""
    manifest: dict = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    if annotations:
        manifest["annotations"] = dict(sorted(annotations.items()))
    return manifest


@dataclass(frozen=True)
class Reference:
    """``HOST[:PORT]/REPOSITORY`` with an optional ``:tag`` and/or ``@sha256:digest``."""

    host: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.host}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def by_digest(self, digest: str) -> Reference:
        return Reference(self.host, self.repository, "", digest)


def parse_reference(text: str) -> Reference:
    """Parse ``HOST[:PORT]/REPO[:TAG][@DIGEST]``; the host part is required (no Docker Hub)."""
    rest, _, digest = text.partition("@")
    if digest and not DIGEST_RE.match(digest):
        raise ValueError(f"{text!r}: digest must be sha256:<64 hex>")
    host, sep, path = rest.partition("/")
    if not sep or not path or not ("." in host or ":" in host or host == "localhost"):
        raise ValueError(
            f"{text!r} names no registry host; write HOST[:PORT]/REPOSITORY, "
            "e.g. 127.0.0.1:5000/lockstep/base"
        )
    repo, tag = path, ""
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = path.rsplit(":", 1)
    return Reference(host, repo, tag, digest)


def split_registry(registry: str) -> tuple[str, str]:
    """``HOST[:PORT][/NAMESPACE]`` -> (host, namespace) with no trailing slash."""
    host, _, namespace = registry.strip().rstrip("/").partition("/")
    if not host:
        raise ValueError(f"registry {registry!r} is empty; write HOST[:PORT][/NAMESPACE]")
    return host, namespace


def repository_for(registry: str, name: str) -> Reference:
    """The repository ``registry/name`` (``127.0.0.1:5000/lockstep`` + ``iris``)."""
    host, namespace = split_registry(registry)
    return Reference(host, f"{namespace}/{name}" if namespace else name)
