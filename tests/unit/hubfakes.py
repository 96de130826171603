"""The slices of JupyterHub's User and Group objects that the spawners read, for unit tests."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Group:
    name: str


@dataclass
class User:
    """The slice of JupyterHub's User the spawner reads."""

    name: str
    admin: bool = False
    groups: list = field(default_factory=list)
    url: str = "/user/x/"
    escaped_name: str = ""
