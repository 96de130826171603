"""What lockstep does with each configurable trait of the spawner it extends.

A site that moves from DockerSpawner or KubeSpawner keeps its ``jupyterhub_config.py``, so
every configurable trait of the parent classes (``Spawner`` and ``DockerSpawner`` or
``KubeSpawner``) is in exactly one of three lists:

- **honoured**: it keeps its meaning (merged into the container or pod, used by the parent's
  own code that lockstep calls, or applied by JupyterHub itself);
- **refused**: set to a value lockstep cannot honour, it stops the hub at start, naming the
  trait, what lockstep does instead and the fix (:func:`refusal_lines`);
- **not applicable**: it can have no effect on a lockstep server, with the reason.

``spawner.docker.parentaudit`` and ``spawner.kube.parentaudit`` hold the lists; their unit
tests enumerate the installed parent classes, so a DockerSpawner or KubeSpawner release
that adds a trait fails the suite with its name until someone decides what it means here.
``docs/parent-traits.md`` is :func:`markdown` of both lists (a test keeps it in step).

Pure: plain data and functions of values; no traitlets, no I/O. It must not decide what
weakens hardening (``spawner.docker.inherited`` and ``spawner.kube.hardening`` do).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from spawner.errors import LockstepError

HONOURED, REFUSED, NOT_APPLICABLE = "honoured", "refused", "not applicable"
VERDICTS = (HONOURED, REFUSED, NOT_APPLICABLE)


class SettingRefused(LockstepError):
    """Spawner settings lockstep cannot honour (the message names each and its fix)."""


def _never(value: Any) -> bool:
    return False


@dataclass(frozen=True)
class Entry:
    """One parent trait: where it is defined, the verdict and what lockstep does."""

    parent: str
    """The class that defines it: ``Spawner``, ``DockerSpawner`` or ``KubeSpawner``."""
    verdict: str
    what: str
    """What lockstep does with it (honoured), instead of it (refused), or why it cannot
    matter (not applicable): the third column of the docs' table."""
    allowed: Callable[[Any], bool] = _never
    """Refused traits only: the values lockstep accepts (the parent's default among them)."""


def honoured(parent: str, what: str) -> Entry:
    return Entry(parent, HONOURED, what)


def refused(parent: str, what: str, allowed: Callable[[Any], bool] = _never) -> Entry:
    return Entry(parent, REFUSED, what, allowed)


def not_applicable(parent: str, why: str) -> Entry:
    return Entry(parent, NOT_APPLICABLE, why)


HUB_APPLIED = (
    "auth_state_hook", "consecutive_failure_limit", "group_overrides", "http_timeout",
    "oauth_client_allowed_scopes", "oauth_roles", "poll_interval", "poll_jitter",
    "post_stop_hook", "pre_spawn_hook", "progress_ready_hook", "server_token_scopes",
    "start_timeout",
)
"""``Spawner`` traits JupyterHub itself applies around any spawner; lockstep keeps them."""


def hub_applied(names: Iterable[str] = HUB_APPLIED) -> dict[str, Entry]:
    """``honoured`` entries for traits of ``Spawner`` that JupyterHub applies itself."""
    return {name: honoured("Spawner", "JupyterHub applies it; lockstep does not override it")
            for name in names}


def unclassified(audit: Mapping[str, Entry], traits: Iterable[str]) -> list[str]:
    """The names in ``traits`` the audit says nothing about (sorted)."""
    return sorted(set(traits) - set(audit))


def _shown(value: Any) -> str:
    if callable(value):
        return f"<callable {getattr(value, '__name__', type(value).__name__)}>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def refusal_lines(audit: Mapping[str, Entry], values: Mapping[str, Any]) -> list[str]:
    """One line per trait in ``values`` (the traits the site set) that the audit refuses
    at that value; a callable is refused (it cannot be judged before a spawn)."""
    lines = []
    for name, value in sorted(values.items()):
        entry = audit.get(name)
        if entry is None or entry.verdict != REFUSED:
            continue
        if not callable(value) and entry.allowed(value):
            continue
        lines.append(f"- c.{entry.parent}.{name} = {_shown(value)}: {entry.what}")
    return lines


def refusal_message(lines: Iterable[str], spawner: str) -> str:
    """'' when ``lines`` is empty; else the message that stops the hub."""
    lines = list(lines)
    if not lines:
        return ""
    return (
        f"lockstep cannot honour these {spawner} settings (see docs/parent-traits.md); "
        "remove them:\n" + "\n".join(lines)
    )


def markdown(audit: Mapping[str, Entry]) -> str:
    """The audit as a Markdown table: trait, parent, verdict, what lockstep does."""
    rows = ["| trait | parent | verdict | what lockstep does |", "|---|---|---|---|"]
    for name, entry in sorted(audit.items(), key=lambda item: (item[1].parent, item[0])):
        what = entry.what.replace("|", "\\|")
        rows.append(f"| `{name}` | {entry.parent} | {entry.verdict} | {what} |")
    return "\n".join(rows) + "\n"
