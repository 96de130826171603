"""The project model: ``environments/<project>/project.yaml``, strictly validated.

Guarantees: a ``Project`` is immutable and valid (DNS-safe name equal to its folder,
read-only data mounts whose targets never cover or sit inside ``/opt/env``, system
folders, ``/home``, the workspace or each other; a workspace at ``/workspace`` or below;
known runtime, sane resources); an invalid file raises
``ProjectError`` naming the file, the key, what is allowed and the fix. Parsing is pure:
``parse_project`` takes text, ``load_project`` is the only function that reads a file.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from spawner import cuda as cudareq
from spawner.errors import LockstepError

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
MEMORY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?([KMGT]i?)?$")
RUNTIMES = ("runc", "gvisor", "kata")
GPU_VENDORS = ("nvidia", "amd")
ALLOWED_KEYS_HINT = (
    "name, description, members, data, workspace, gpu, resources, isolation, service"
)


class ProjectError(LockstepError):
    """A ``project.yaml`` that is missing or invalid."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Members(Strict):
    """Who may use the project: user names and hub group names."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


SYSTEM_PATHS = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
    "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var",
)
"""Container folders no mount may cover or sit inside."""
ENV_PREFIX = "/opt/env"
HOME = "/home/jovyan"
WORKSPACE_ROOT = "/workspace"


def _normal(value: str, example: str) -> PurePosixPath:
    path = PurePosixPath(value)
    parts = value.split("/")[1:]
    if not value.startswith("/") or "\0" in value or any(p in ("", ".", "..") for p in parts):
        raise ValueError(
            f"must be a plain absolute path (no '.', '..', '//' or trailing '/'), e.g. {example}"
        )
    return path


def overlaps(a: PurePosixPath, b: PurePosixPath) -> bool:
    """True when one path is the other or lies inside it."""
    return a == b or a in b.parents or b in a.parents


def _protected(path: PurePosixPath) -> str | None:
    for guarded, what in (
        *((PurePosixPath(p), "a system folder") for p in SYSTEM_PATHS),
        (PurePosixPath(ENV_PREFIX), "the image's environment"),
        (PurePosixPath(HOME), "the home folder"),
        (PurePosixPath("/home"), "the home folders"),
        (PurePosixPath("/opt"), "reserved for the image's environment"),
    ):
        if path == guarded or guarded in path.parents or (
            path in guarded.parents and what != "a system folder"
        ):
            return f"{guarded} ({what})"
    return None


class DataMount(Strict):
    """Shared data, always mounted read-only at ``target``.

    The host side is either ``source`` (a path under the site's data roots, confined to
    ``<root>/<project>`` when the site grants nothing else) or ``dataset`` (a data set the
    site names in ``c.Lockstep.datasets``). ``target`` must be a plain absolute path that
    neither covers nor sits inside ``/opt/env``, a system folder, ``/home`` or the
    workspace; the launch also requires it below ``c.Lockstep.data_target_prefixes``
    (``/data`` by default).
    """

    name: str = Field(pattern=NAME_RE.pattern)
    source: str = ""
    dataset: str = ""
    target: str
    description: str = ""

    @field_validator("source")
    @classmethod
    def _plain_source(cls, value: str) -> str:
        parts = value.split("/")
        if "\0" in value or any(p in (".", "..") for p in parts) or value.strip("/") == "":
            if value:
                raise ValueError(
                    "must name a folder inside a data root without '.' or '..' segments, "
                    "e.g. source: forecast/sales (under <data root>/<project>/)"
                )
        return value

    @field_validator("target")
    @classmethod
    def _safe_target(cls, value: str) -> str:
        example = f"/data/{value.strip('/').rsplit('/', 1)[-1] or 'sales'}"
        path = _normal(value, example)
        if len(path.parts) < 3:
            raise ValueError(f"must be a folder below a top-level folder, e.g. target: {example}")
        if guard := _protected(path):
            raise ValueError(
                f"may not cover or sit inside {guard}: data is mounted under /data, "
                f"e.g. target: {example}"
            )
        return str(path)

    @model_validator(mode="after")
    def _one_origin(self) -> DataMount:
        if bool(self.source) == bool(self.dataset):
            raise ValueError(
                f"data mount {self.name!r} needs exactly one of 'source' (a folder under "
                "<data root>/<project>/) or 'dataset' (a name from c.Lockstep.datasets)"
            )
        return self


class Workspace(Strict):
    """Read-write storage shared by the project's members, persistent across servers.

    ``target`` is ``/workspace`` or a folder below it (never the home folder, the
    environment or a system folder).
    """

    enabled: bool = True
    target: str = WORKSPACE_ROOT
    size: str = Field("10Gi", pattern=MEMORY_RE.pattern)

    @field_validator("target")
    @classmethod
    def _under_workspace(cls, value: str) -> str:
        path = _normal(value, WORKSPACE_ROOT)
        root = PurePosixPath(WORKSPACE_ROOT)
        if path != root and root not in path.parents:
            raise ValueError(
                f"must be {WORKSPACE_ROOT} or a folder below it (the workspace may not cover "
                f"the environment, the home folder or system folders), e.g. target: "
                f"{WORKSPACE_ROOT}"
            )
        return str(path)


class Gpu(Strict):
    count: int = Field(1, ge=1, le=16)
    vendor: Literal["nvidia", "amd"] = "nvidia"
    type: str = ""
    cuda: str = ""
    """The CUDA the project's GPU code needs from the driver, a minimum: ``">=12.0"``
    (``spawner.cuda``); '' states none."""

    @field_validator("cuda", mode="before")
    @classmethod
    def _cuda_minimum(cls, value: object) -> str:
        if value in ("", None):
            return ""
        return str(cudareq.parse_requirement(value, where="the value"))

    @model_validator(mode="after")
    def _cuda_is_nvidia(self) -> Gpu:
        if self.cuda and self.vendor != "nvidia":
            raise ValueError(
                f"cuda is an NVIDIA requirement but vendor is {self.vendor!r}; set "
                "vendor: nvidia or remove cuda"
            )
        return self

    @property
    def cuda_requirement(self) -> cudareq.CudaRequirement | None:
        return cudareq.parse_requirement(self.cuda) if self.cuda else None


class Resources(Strict):
    cpu: float = Field(2.0, gt=0, le=256)
    memory: str = Field("2G", pattern=MEMORY_RE.pattern)
    pids: int = Field(1024, ge=64, le=1_000_000)


class Service(Strict):
    """A model service the project can deploy from a stage's digest."""

    command: tuple[str, ...] = Field(min_length=1)
    port: int = Field(ge=1024, le=65535)
    health: str = "/health"
    replicas: int = Field(1, ge=1, le=100)

    @field_validator("health")
    @classmethod
    def _health_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be a URL path starting with '/', e.g. /health")
        return value


class Project(Strict):
    """One project, as ``project.yaml`` states it."""

    name: str
    description: str = ""
    members: Members = Members()
    data: tuple[DataMount, ...] = ()
    workspace: Workspace = Workspace()
    gpu: Gpu | None = None
    resources: Resources = Resources()
    isolation: Literal["runc", "gvisor", "kata"] = "runc"
    service: Service | None = None

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(
                "must be DNS-safe: 1-40 lowercase letters, digits and '-', "
                "starting and ending with a letter or digit, e.g. 'iris-demo'"
            )
        return value

    @model_validator(mode="after")
    def _unique_mounts(self) -> Project:
        names = [m.name for m in self.data]
        targets = [m.target for m in self.data]
        if self.workspace.enabled:
            targets.append(self.workspace.target)
        for label, values in (("name", names), ("target", targets)):
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(
                    f"data mounts must have distinct {label}s; repeated: {', '.join(dupes)}")
        for i, a in enumerate(targets):
            for b in targets[i + 1 :]:
                if overlaps(PurePosixPath(a), PurePosixPath(b)):
                    raise ValueError(
                        f"mount targets {a} and {b} lie one inside the other (data mounts and "
                        "the workspace must not nest); give each its own folder, e.g. "
                        "/data/NAME"
                    )
        return self

    def is_member(self, user: str, groups: set[str] | frozenset[str] = frozenset()) -> bool:
        """True when ``user`` is listed, or belongs to a listed group."""
        return user in self.members.users or bool(set(groups) & set(self.members.groups))


def _location(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _explain(err: dict) -> str:
    key = _location(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        allowed = ALLOWED_KEYS_HINT if not parent else "see the documented keys for " + parent
        return f"unknown key '{key}'; allowed keys: {allowed}. Remove or rename it."
    if kind == "missing":
        return f"missing key '{key}'; add it (for 'name', the folder name)."
    if kind == "literal_error":
        return f"key '{key}': {err['msg']}; got {err.get('input')!r}."
    return f"key '{key}': {err['msg'].removeprefix('Value error, ')} (got {err.get('input')!r})."


def parse_project(text: str, *, source: str, folder_name: str | None = None) -> Project:
    """Parse and validate ``project.yaml`` text. ``source`` names the file in errors."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProjectError(
            f"{source}: not valid YAML: {exc}. Fix the syntax at the line shown.") from exc
    if not isinstance(raw, dict):
        raise ProjectError(
            f"{source}: must be a mapping with keys {ALLOWED_KEYS_HINT}; got {type(raw).__name__}."
        )
    try:
        project = Project.model_validate(raw)
    except ValidationError as exc:
        problems = "\n  ".join(_explain(e) for e in exc.errors())
        raise ProjectError(f"{source}: invalid project:\n  {problems}") from None
    if folder_name is not None and project.name != folder_name:
        raise ProjectError(
            f"{source}: key 'name' is {project.name!r} but the folder is {folder_name!r}; "
            f"set name: {folder_name} or rename the folder."
        )
    return project


def load_project(project_dir: Path) -> Project:
    """Read ``project_dir/project.yaml``."""
    path = Path(project_dir) / "project.yaml"
    if not path.is_file():
        raise ProjectError(
            f"{path}: no project.yaml; create it with at least 'name: {Path(project_dir).name}'."
        )
    return parse_project(path.read_text(), source=str(path), folder_name=Path(project_dir).name)


def list_projects(environments_dir: Path) -> list[Project]:
    """Every valid project below ``environments_dir``, sorted by name."""
    root = Path(environments_dir)
    return [load_project(p.parent) for p in sorted(root.glob("*/project.yaml"))]
