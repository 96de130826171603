"""What a CIS check reads and returns: host facts, results, verdicts, ``inspect`` readers.

The vocabulary of ``spawner.docker.cis`` (the container checks) and
``spawner.docker.netaudit`` (the network and firewall checks). Pure: no I/O, inputs are
never mutated.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

SECURITY_OPT_RE = re.compile(r"([^=:]*)[=:]?(.*)", re.S)
PASS, FAIL, NA, EXCEPTION = "pass", "fail", "n/a", "exception"


@dataclass(frozen=True)
class HostFacts:
    """What the audit needs to know about the engine's host (from ``docker info``)."""

    apparmor: bool = False
    seccomp: bool = True
    userns: bool = False  # the daemon runs with userns-remap


@dataclass(frozen=True)
class Result:
    """One container x one check."""

    container: str
    id: str
    project: str
    kind: str
    cis: str
    check: str
    status: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


Verdict = tuple[str, str]  # (status, detail)


@dataclass(frozen=True)
class Check:
    cis: str
    name: str
    judge: Callable[[Mapping[str, Any], HostFacts], Verdict]


def host_facts(info: Mapping[str, Any]) -> HostFacts:
    """``HostFacts`` from ``docker info`` (its ``SecurityOptions``: ``name=apparmor``, ...)."""
    names = set()
    for option in info.get("SecurityOptions") or ():
        for part in str(option).split(","):
            key, _, value = part.partition("=")
            if key == "name":
                names.add(value)
    return HostFacts(apparmor="apparmor" in names, seccomp="seccomp" in names,
                     userns="userns" in names)


def host_config(info: Mapping[str, Any]) -> Mapping[str, Any]:
    return info.get("HostConfig") or {}


def security_opts(info: Mapping[str, Any]) -> dict[str, str]:
    """``SecurityOpt`` as {key: value}; ``seccomp:unconfined`` and ``=`` forms alike."""
    opts = {}
    for entry in host_config(info).get("SecurityOpt") or ():
        key, value = SECURITY_OPT_RE.match(str(entry)).groups()  # type: ignore[union-attr]
        opts[key.strip()] = value.strip()
    return opts


def binds(info: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [m for m in info.get("Mounts") or () if m.get("Type") == "bind"]


def norm(path: str) -> str:
    return posixpath.normpath(path) if path else ""


def privileged(info: Mapping[str, Any]) -> bool:
    return bool(host_config(info).get("Privileged"))


def ok(detail: str = "") -> Verdict:
    return PASS, detail


def fail(detail: str) -> Verdict:
    return FAIL, detail
