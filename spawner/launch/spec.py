"""The launch spec: what a project's server (or job, or service) runs, engine-neutral.

``build_launch_spec`` is pure: from a project, an image resolved to a digest, a user and
the site's launch options it returns a frozen ``LaunchSpec``. The Docker renderer turns
it into a container create body and the Kubernetes renderer into a pod, so both backends
agree on image, user, mounts, limits and labels by construction.

Guarantees: the image is always referenced by digest; data mounts are always read-only;
hardening is on unless the site's options turn an item off; output is sorted and
deterministic. This module must not touch the filesystem, the network or ``os.environ``:
host data sources arrive already resolved and checked (see ``datamounts``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from spawner.labels import DIGEST, LOCK_HASH, MANAGED, PROJECT, STAGE, USER
from spawner.project import Project

DIGEST_REF_RE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
HOME = "/home/jovyan"
UID = 1000
GID = 100

MountKind = Literal["data", "workspace", "home", "tmpfs"]


@dataclass(frozen=True)
class ImageRef:
    """An image pinned by digest, with the lock it was built from."""

    reference: str  # REPO@sha256:...
    lock_hash: str = ""

    def __post_init__(self) -> None:
        if not DIGEST_REF_RE.match(self.reference):
            raise ValueError(
                f"image {self.reference!r} is not pinned by digest; "
                "lockstep runs images only as REPOSITORY@sha256:<64 hex>"
            )

    @property
    def digest(self) -> str:
        return self.reference.split("@", 1)[1]

    @property
    def repository(self) -> str:
        return self.reference.split("@", 1)[0]


@dataclass(frozen=True)
class Mount:
    """One mount. ``source`` is a host path (data), a volume/claim name, or '' for tmpfs."""

    kind: MountKind
    name: str
    source: str
    target: str
    read_only: bool
    size: str = ""


@dataclass(frozen=True)
class GpuRequest:
    count: int
    vendor: str
    type: str = ""
    cuda: str = ""
    """The CUDA the project needs from the driver (``>=12.0``; '' for none)."""


@dataclass(frozen=True)
class Resources:
    cpu: float
    memory_bytes: int
    pids: int


@dataclass(frozen=True)
class Hardening:
    """Security settings; every field defaults to the hardened choice."""

    read_only_root: bool = True
    cap_drop_all: bool = True
    no_new_privileges: bool = True
    seccomp_default: bool = True
    run_as_non_root: bool = True


@dataclass(frozen=True)
class LaunchOptions:
    """The site's choices that shape every launch (from the admin's traitlets config)."""

    hardening: Hardening = Hardening()
    network_prefix: str = "lockstep"
    extra_env: tuple[tuple[str, str], ...] = ()
    tmpfs_targets: tuple[str, ...] = ("/tmp",)
    tmpfs_size: str = "1Gi"


@dataclass(frozen=True)
class LaunchSpec:
    """Everything an engine needs to run one project container, engine-neutral."""

    project: str
    user: str
    stage: str
    image: ImageRef
    uid: int
    gid: int
    home: str
    env: tuple[tuple[str, str], ...]
    mounts: tuple[Mount, ...]
    gpu: GpuRequest | None
    resources: Resources
    runtime: str
    labels: tuple[tuple[str, str], ...]
    network: str
    hardening: Hardening
    command: tuple[str, ...] = field(default=())

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    def labels_dict(self) -> dict[str, str]:
        return dict(self.labels)


_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def parse_bytes(text: str) -> int:
    """``"2G"`` -> 2_000_000_000, ``"512Mi"`` -> 536_870_912 (Kubernetes quantity units)."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([KMGT]i?)?", text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a size; use e.g. 512Mi, 2G or 4Gi")
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


_HASHED = re.compile(r".*-[0-9a-f]{8}$")


def safe_slug(value: str, limit: int = 40) -> str:
    """A lowercase DNS-safe slug of ``value`` (``[a-z0-9-]``, never ``_`` or ``.``).

    A value that is already a slug, short enough and not shaped like a hashed slug is kept;
    any other gets ``-<8 hex of sha256(value)>``. So two different values never share a
    slug (short of a sha256 prefix collision): a user named ``a-b-<hash of "a_b">`` gets a
    hash of their own instead of ``a_b``'s slug."""
    import hashlib

    slug = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-") or "x"
    if slug == value and len(slug) <= limit and not _HASHED.match(value):
        return slug
    suffix = hashlib.sha256(value.encode()).hexdigest()[:8]
    return f"{slug[: limit - 9].rstrip('-')}-{suffix}"


def network_name(project: str, options: LaunchOptions = LaunchOptions()) -> str:
    return f"{options.network_prefix}-{project}"


def workspace_volume(project: str) -> str:
    return f"lockstep-ws-{project}"


def home_volume(project: str, user: str) -> str:
    """``lockstep-home-<project>_<user slug>``: '_' is in neither a project name nor a slug,
    so project ``ml`` + user ``team-bob`` and ``ml-team`` + ``bob`` get different volumes
    (before, both were ``lockstep-home-ml-team-bob``; see docs/production.md, "Names")."""
    return f"lockstep-home-{project}_{safe_slug(user)}"


def spec_labels(*, project: str, user: str, stage: str, image: ImageRef) -> dict[str, str]:
    """The labels every lockstep container and pod carries (NetworkPolicies select on them)."""
    return {
        MANAGED: "true",
        PROJECT: project,
        USER: safe_slug(user),
        STAGE: stage,
        DIGEST: image.digest,
        LOCK_HASH: image.lock_hash,
    }


def build_launch_spec(
    *,
    project: Project,
    image: ImageRef,
    user: str,
    stage: str,
    data_sources: Mapping[str, str],
    options: LaunchOptions = LaunchOptions(),
    env: Mapping[str, str] | None = None,
    gpu: bool | None = None,
    command: tuple[str, ...] = (),
) -> LaunchSpec:
    """Build the launch spec of ``project`` for ``user``.

    Parameters
    ----------
    data_sources
        Host path for each data mount name, already resolved under the allowed data roots.
    env
        Extra environment (the hub's JUPYTERHUB_* variables); site ``extra_env`` and
        lockstep's own variables are merged in, the caller's taking precedence.
    gpu
        Whether to request the project's GPUs; ``None`` means "if the project has any".
    """
    missing = sorted({m.name for m in project.data} - set(data_sources))
    if missing:
        raise ValueError(f"no resolved host source for data mount(s): {', '.join(missing)}")
    mounts = [
        Mount("data", m.name, data_sources[m.name], m.target, read_only=True)
        for m in project.data
    ]
    if project.workspace.enabled:
        mounts.append(Mount("workspace", "workspace", workspace_volume(project.name),
                            project.workspace.target, read_only=False,
                            size=project.workspace.size))
    mounts.append(Mount("home", "home", home_volume(project.name, user), HOME, read_only=False))
    for i, target in enumerate(options.tmpfs_targets):
        mounts.append(Mount("tmpfs", f"tmp{i}", "", target, read_only=False,
                            size=options.tmpfs_size))
    want_gpu = project.gpu is not None if gpu is None else gpu
    if want_gpu and project.gpu is None:
        raise ValueError(f"project {project.name!r} does not allow GPUs; add a 'gpu:' section")
    merged_env = {
        "HOME": HOME,
        "USER": "jovyan",
        "LOCKSTEP_PROJECT": project.name,
        "LOCKSTEP_STAGE": stage,
        "LOCKSTEP_IMAGE": image.reference,
        "LOCKSTEP_LOCK_HASH": image.lock_hash,
        **dict(options.extra_env),
        **(env or {}),
    }
    if project.workspace.enabled:
        merged_env.setdefault("LOCKSTEP_WORKSPACE", project.workspace.target)
    return LaunchSpec(
        project=project.name,
        user=user,
        stage=stage,
        image=image,
        uid=UID,
        gid=GID,
        home=HOME,
        env=tuple(sorted(merged_env.items())),
        mounts=tuple(sorted(mounts, key=lambda m: (m.target, m.kind))),
        gpu=GpuRequest(project.gpu.count, project.gpu.vendor, project.gpu.type, project.gpu.cuda)
        if want_gpu and project.gpu else None,
        resources=Resources(
            cpu=project.resources.cpu,
            memory_bytes=parse_bytes(project.resources.memory),
            pids=project.resources.pids,
        ),
        runtime=project.isolation,
        labels=tuple(sorted(spec_labels(project=project.name, user=user, stage=stage,
                                        image=image).items())),
        network=network_name(project.name, options),
        hardening=options.hardening,
        command=tuple(command),
    )
