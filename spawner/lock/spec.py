"""``environment.yml`` as lockstep reads it, and the site inputs a solve needs.

Guarantees: every function here is pure (no filesystem, network, environment or cwd);
it takes text and mappings and returns frozen data. A spec lockstep cannot lock raises
``SpecError`` naming the file, the key, what is allowed and the exact fix, never a
traceback. This module must not import conda-lock or rattler: the content hash and the
per-platform dependency lists come from ``condalock.py``, which reads the same file the
way conda-lock does.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import yaml

from spawner.errors import LockstepError

PLATFORMS = ("linux-64", "linux-aarch64", "osx-64", "osx-arm64", "win-64")
"""The platforms a lock may hold: laptops (osx-*, win-64) and the Linux machines images are
built for (``spawner.lock.platforms`` says which get images)."""

SPEC_KEYS = ("name", "channels", "dependencies", "platforms")
IGNORED_KEYS = ("prefix",)
"""``conda env export`` writes ``prefix:``; it says where the env was, not what it is."""

URL_SCHEMES = ("https://", "http://", "file://")


class SpecError(LockstepError):
    """An ``environment.yml`` (or a channel/platform input) lockstep cannot lock."""


@dataclass(frozen=True)
class EnvSpec:
    """The parts of ``environment.yml`` that decide a lock."""

    source: str
    name: str | None
    channels: tuple[str, ...]
    """Channels as written, ``nodefaults`` dropped (conda-lock drops it too)."""
    dependencies: tuple[str, ...]
    """Conda match specs as written (selector comments are YAML comments here)."""
    platforms: tuple[str, ...]
    """The ``platforms:`` key, empty when the spec has none."""


@dataclass(frozen=True)
class ResolvedChannel:
    """A channel as the user wrote it, and the URL lockstep solves against and records."""

    name: str
    url: str


def parse_environment(text: str, *, source: str) -> EnvSpec:
    """Parse and check ``environment.yml`` text; ``source`` names the file in errors."""
    try:
        raw = yaml.safe_load(_Named(text, source))
    except yaml.YAMLError as exc:
        raise SpecError(
            f"{source}: not valid YAML: {exc}. Fix the syntax at the line shown."
        ) from None
    if not isinstance(raw, dict):
        raise SpecError(
            f"{source}: must be a mapping with keys {', '.join(SPEC_KEYS)}; "
            f"got {type(raw).__name__}. Start from:\n{_EXAMPLE}"
        )
    unknown = sorted(str(k) for k in raw if k not in SPEC_KEYS + IGNORED_KEYS)
    if unknown:
        raise SpecError(
            f"{source}: unknown key(s) {', '.join(repr(k) for k in unknown)}; lockstep reads "
            f"{', '.join(SPEC_KEYS)}. Remove or rename them."
        )
    return EnvSpec(
        source=source,
        name=_name(raw, source),
        channels=_channels(raw, source),
        dependencies=_dependencies(raw, source),
        platforms=_platforms(raw.get("platforms"), source, key="platforms", text=text),
    )


class _Named(io.StringIO):
    """Text with a name, so PyYAML's error marks say which file."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


_EXAMPLE = """\
  name: my-project
  channels:
    - conda-forge
  dependencies:
    - python=3.11
    - numpy"""


def _name(raw: dict, source: str) -> str | None:
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise SpecError(
            f"{source}: key 'name' must be a string, got {name!r}; e.g. name: my-project"
        )
    return name


def _channels(raw: dict, source: str) -> tuple[str, ...]:
    value = raw.get("channels")
    if value is None:
        raise SpecError(
            f"{source}: no 'channels' key; add the channels to solve against, e.g.\n"
            "  channels:\n    - conda-forge"
        )
    if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
        raise SpecError(
            f"{source}: key 'channels' must be a list of channel names or URLs, got {value!r}; "
            "e.g.\n  channels:\n    - conda-forge"
        )
    channels = tuple(c.strip() for c in value if c.strip() != "nodefaults")
    if not channels:
        raise SpecError(
            f"{source}: key 'channels' lists no channel besides 'nodefaults'; add one, "
            "e.g. conda-forge."
        )
    return channels


def _dependencies(raw: dict, source: str) -> tuple[str, ...]:
    value = raw.get("dependencies")
    if not isinstance(value, list) or not value:
        raise SpecError(
            f"{source}: key 'dependencies' must be a non-empty list of conda package specs, "
            f"got {value!r}; e.g.\n  dependencies:\n    - python=3.11\n    - numpy"
        )
    specs: list[str] = []
    for index, item in enumerate(value):
        if isinstance(item, str) and item.strip():
            specs.append(item.strip())
        elif isinstance(item, dict) and set(item) == {"pip"}:
            continue  # read and checked by ``pipplan`` (``pipspec`` parses each line)
        else:
            raise SpecError(
                f"{source}: dependencies[{index}] must be a conda package spec such as "
                f"'numpy>=1.26' or a 'pip:' list (quote it if YAML reads it as a number), "
                f"got {item!r}."
            )
    return tuple(specs)


def _platforms(value: object, source: str, *, key: str, text: str = "") -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise SpecError(
            f"{source}: {key} must be a list of platforms, got {value!r}; "
            "e.g.\n  platforms:\n    - linux-64"
        )
    unknown = [p for p in value if p not in PLATFORMS]
    if unknown:
        where = "".join(f" (line {n})" for n in _lines_of(text, unknown[0]))
        raise SpecError(
            f"{source}{where}: {key} names unknown platform(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(PLATFORMS)}. Use conda's subdir names, e.g. osx-arm64 for "
            "Apple silicon, linux-aarch64 for ARM servers."
        )
    return tuple(dict.fromkeys(value))


def _lines_of(text: str, item: str) -> list[int]:
    """1-based numbers of the lines listing ``item`` (``- item``), for messages."""
    return [
        n
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip().lstrip("-").strip().strip("'\"") == item and line.strip().startswith("-")
    ][:1]


def select_platforms(
    *, spec: EnvSpec, requested: Sequence[str], default: Sequence[str]
) -> tuple[str, ...]:
    """The spec's ``platforms:``, else ``--platform``, else ``c.Lockstep.platforms``.

    A ``--platform`` that disagrees with the spec's list is an error rather than silently
    ignored.
    """
    cli = _platforms(list(requested), "--platform", key="--platform")
    if spec.platforms:
        if cli and set(cli) != set(spec.platforms):
            raise SpecError(
                f"{spec.source}: lists platforms {', '.join(spec.platforms)} but --platform "
                f"asks for {', '.join(cli)}; drop --platform, or change the platforms: key."
            )
        return spec.platforms
    if cli:
        return cli
    chosen = _platforms(list(default), "c.Lockstep.platforms", key="c.Lockstep.platforms")
    if not chosen:
        raise SpecError(
            "no platform to lock for: add platforms: to the spec, pass --platform linux-64, "
            'or set c.Lockstep.platforms = ["linux-64"].'
        )
    return chosen


def is_url(channel: str) -> bool:
    return channel.startswith(URL_SCHEMES)


def resolve_channels(
    channels: Sequence[str], *, channel_urls: Mapping[str, str], source: str
) -> tuple[ResolvedChannel, ...]:
    """Map each channel name to its URL; a channel written as a URL is used as it is."""
    resolved = []
    for channel in channels:
        if is_url(channel):
            resolved.append(ResolvedChannel(name=channel, url=channel.rstrip("/")))
        elif channel in channel_urls:
            resolved.append(
                ResolvedChannel(name=channel, url=str(channel_urls[channel]).rstrip("/"))
            )
        else:
            known = ", ".join(sorted(channel_urls)) or "none"
            raise SpecError(
                f"{source}: channel {channel!r} has no URL (known: {known}); map it in "
                f"lockstep_config.py with c.Lockstep.channel_urls = {{{channel!r}: "
                f"'https://conda.anaconda.org/{channel}'}}, or pass "
                f"--channel-url {channel}=URL."
            )
    return tuple(resolved)


def parse_channel_url_args(values: Sequence[str]) -> dict[str, str]:
    """``--channel-url NAME=URL`` values as a mapping (later ones win)."""
    result: dict[str, str] = {}
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not name.strip() or not is_url(url.strip()):
            raise SpecError(
                f"--channel-url {value!r} must be NAME=URL with an https://, http:// or "
                "file:// URL, e.g. --channel-url conda-forge=file:///srv/channels/conda-forge"
            )
        result[name.strip()] = url.strip().rstrip("/")
    return result


def parse_virtual_packages(
    platform: str, virtual_packages: Mapping[str, Sequence[str]]
) -> tuple[tuple[str, str, str], ...]:
    """``c.Lockstep.virtual_packages[platform]`` as ``(name, version, build)`` triples."""
    if platform not in virtual_packages:
        raise SpecError(
            f"c.Lockstep.virtual_packages has no entry for {platform}, so lockstep cannot "
            f"tell the solver what machines it runs on; add one in lockstep_config.py, e.g. "
            f"c.Lockstep.virtual_packages[{platform!r}] = {_VIRTUAL_EXAMPLES.get(platform)!r}"
        )
    triples = []
    for entry in virtual_packages[platform]:
        parts = str(entry).split("=")
        if len(parts) != 3 or not parts[0].startswith("__") or not all(parts):
            raise SpecError(
                f"c.Lockstep.virtual_packages[{platform!r}] entry {entry!r} must be "
                "NAME=VERSION=BUILD with a name starting '__', e.g. '__glibc=2.28=0'."
            )
        triples.append((parts[0], parts[1], parts[2]))
    return tuple(triples)


_VIRTUAL_EXAMPLES = {
    "linux-64": ["__unix=0=0", "__linux=5.10=0", "__glibc=2.28=0", "__archspec=1=x86_64"],
    "linux-aarch64": ["__unix=0=0", "__linux=5.10=0", "__glibc=2.28=0", "__archspec=1=aarch64"],
    "osx-64": ["__unix=0=0", "__osx=11.0=0", "__archspec=1=x86_64"],
    "osx-arm64": ["__unix=0=0", "__osx=11.0=0", "__archspec=1=arm64"],
    "win-64": ["__win=0=0", "__archspec=1=x86_64"],
}
