"""The ``pip:`` section of an ``environment.yml``, read line by line.

Guarantees: every function here is pure (no filesystem, network, environment or cwd;
``-r FILE`` is read through the ``include`` callable the caller passes). A line lockstep
cannot lock raises ``SpecError`` naming the file, the line (its number where it can be
found), what is wrong and what to do instead: editable installs, local paths, VCS and
direct URLs are refused, as are pip options other than ``-r``/``--requirement``,
``-i``/``--index-url`` and ``--extra-index-url``. Requirements come back as written by
``packaging`` (names, versions, extras and markers kept; markers are evaluated per
platform by the resolver). It must not import conda-lock, rattler or uv.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement

from spawner.lock.spec import SpecError

VCS_PREFIXES = ("git+", "hg+", "svn+", "bzr+")
PATH_PREFIXES = (".", "/", "~", "file:", "\\")
INCLUDE_OPTIONS = ("-r", "--requirement")
INDEX_OPTIONS = ("-i", "--index-url")
EXTRA_INDEX_OPTIONS = ("--extra-index-url",)
ALLOWED_OPTIONS = "-r FILE, --index-url URL, --extra-index-url URL"
MAX_INCLUDE_DEPTH = 5

Include = Callable[[str, str], tuple[str, Sequence[str]]]
"""``include(name, from_source) -> (source, lines)``: read a ``-r`` file (relative to the
spec's folder), or raise ``SpecError`` naming it."""


@dataclass(frozen=True)
class PipLine:
    """One pip requirement and where it was written."""

    requirement: str
    """As ``packaging`` writes it: ``name[extra]>=1.0; marker``."""
    name: str
    """The canonical PyPI name (``requests-toolbelt``)."""
    where: str
    """``environment.yml:12`` or ``requirements.txt:3``: for messages."""
    text: str
    """The line as written."""


@dataclass(frozen=True)
class PipSection:
    """A spec's pip requirements and the indexes they name."""

    lines: tuple[PipLine, ...]
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()
    """The ``-r`` files read (as the spec names them), for the lock's inputs."""

    @property
    def requirements(self) -> tuple[str, ...]:
        return tuple(line.requirement for line in self.lines)


def line_number(text: str, entry: str) -> int | None:
    """The 1-based line of ``text`` holding ``entry`` as a list item, else None."""
    for number, raw in enumerate(text.splitlines(), start=1):
        item = raw.split(" #", 1)[0].strip().lstrip("-").strip()
        if entry.strip() in (item, item.strip("'\"")):
            return number
    return None


def parse_pip_section(
    entries: Sequence[object], *, source: str, text: str = "", include: Include | None = None
) -> PipSection:
    """Parse the ``pip:`` list of ``source`` (``text`` is the file, to find line numbers)."""
    state = _State()
    _parse(entries, source=source, text=text, include=include, state=state, depth=0)
    names: dict[str, PipLine] = {}
    for line in state.lines:
        if line.name in names and names[line.name].requirement != line.requirement:
            raise SpecError(
                f"{line.where}: {line.name} is required twice ({names[line.name].text!r} at "
                f"{names[line.name].where} and {line.text!r}); keep one line per package."
            )
        names.setdefault(line.name, line)
    return PipSection(
        lines=tuple(names.values()),
        index_url=state.index_url,
        extra_index_urls=tuple(dict.fromkeys(state.extra)),
        includes=tuple(dict.fromkeys(state.includes)),
    )


@dataclass
class _State:
    lines: list[PipLine] = None  # type: ignore[assignment]
    index_url: str | None = None
    extra: list[str] = None  # type: ignore[assignment]
    includes: list[str] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.lines, self.extra, self.includes = [], [], []


def _parse(entries, *, source, text, include, state: _State, depth: int) -> None:
    for index, entry in enumerate(entries):
        if not isinstance(entry, str):
            raise SpecError(
                f"{source}: pip entry {index + 1} is {entry!r}, not a requirement line; write "
                "it as a string such as 'requests>=2.31' (quote it if YAML reads it otherwise)."
            )
        raw = entry.strip()
        if not raw or raw.startswith("#"):
            continue
        number = line_number(text, raw) if text else None
        where = f"{source}:{number}" if number else f"{source} (pip line {raw!r})"
        if raw.startswith("-"):
            _option(raw, where=where, source=source, include=include, state=state, depth=depth)
        else:
            state.lines.append(parse_requirement(raw, where=where))


def _option(raw: str, *, where: str, source: str, include, state: _State, depth: int) -> None:
    option, value = _split_option(raw)
    if option in ("-e", "--editable"):
        raise SpecError(
            f"{where}: {raw!r} is an editable install, which a lock cannot pin (it is a "
            "folder on someone's machine). Build a wheel (`pip wheel --no-deps .`), publish "
            "it to an index the site allows and require it by name and version, or install "
            "it in the running server with `pip install -e` for development."
        )
    if option in INCLUDE_OPTIONS:
        _include(value, where=where, source=source, include=include, state=state, depth=depth)
    elif option in INDEX_OPTIONS:
        if state.index_url and state.index_url != value:
            raise SpecError(
                f"{where}: a second --index-url {value!r} (the first was {state.index_url!r}); "
                "keep one, and add others with --extra-index-url."
            )
        state.index_url = _url(value, where=where, option=option)
    elif option in EXTRA_INDEX_OPTIONS:
        state.extra.append(_url(value, where=where, option=option))
    else:
        raise SpecError(
            f"{where}: pip option {option!r} is not one lockstep locks with; allowed: "
            f"{ALLOWED_OPTIONS}. Remove the line (lockstep always installs wheels, pinned by "
            "sha256, without build isolation questions)."
        )


def _split_option(raw: str) -> tuple[str, str]:
    match = re.match(r"^(-[A-Za-z]|--[A-Za-z-]+)(?:[\s=]+(.*))?$", raw)
    if not match:
        raise SpecError(f"{raw!r}: not a pip option; allowed: {ALLOWED_OPTIONS}.")
    return match[1], (match[2] or "").strip()


def _url(value: str, *, where: str, option: str) -> str:
    if not re.match(r"^https?://[^\s]+$", value):
        raise SpecError(
            f"{where}: {option} needs an https:// URL of a package index (PEP 503 simple "
            f"API), got {value!r}; e.g. {option} https://pypi.org/simple"
        )
    return value.rstrip("/")


def _include(value, *, where, source, include, state: _State, depth: int) -> None:
    if not value:
        raise SpecError(f"{where}: -r needs a file name, e.g. -r requirements.txt")
    if include is None:
        raise SpecError(f"{where}: -r {value} cannot be read here; list the packages instead.")
    if depth >= MAX_INCLUDE_DEPTH:
        raise SpecError(
            f"{where}: -r files nest more than {MAX_INCLUDE_DEPTH} deep; flatten them."
        )
    included, lines = include(value, source)
    state.includes.append(value)
    text = "\n".join(lines)
    _parse([ln.split(" #", 1)[0] for ln in lines], source=included, text=text, include=include,
           state=state, depth=depth + 1)


def parse_requirement(raw: str, *, where: str) -> PipLine:
    """One requirement line, or ``SpecError`` saying why lockstep cannot lock it."""
    lowered = raw.lower()
    if lowered.startswith(VCS_PREFIXES) or re.search(r"@\s*(git|hg|svn|bzr)\+", lowered):
        raise SpecError(
            f"{where}: {raw!r} is a VCS URL, which a lock cannot pin by hash. Tag a release, "
            "build its wheel, publish it to an index the site allows, and require it as "
            "NAME==VERSION."
        )
    if lowered.startswith(PATH_PREFIXES) or re.match(r"^[A-Za-z]:[\\/]", raw):
        raise SpecError(
            f"{where}: {raw!r} is a local path, which exists only on one machine. Build a "
            "wheel, publish it to an index the site allows, and require it as NAME==VERSION."
        )
    if "--hash" in raw:
        raise SpecError(
            f"{where}: {raw!r} carries --hash; lockstep records every wheel's sha256 in "
            "conda-lock.yml itself. Remove the --hash option."
        )
    try:
        requirement = Requirement(raw)
    except InvalidRequirement as exc:
        raise SpecError(
            f"{where}: {raw!r} is not a pip requirement ({str(exc).splitlines()[0]}). Write "
            "it as NAME, NAME==VERSION, NAME[extra]>=LOW,<HIGH or NAME; MARKER, e.g. "
            "'requests>=2.31; python_version >= \"3.10\"'."
        ) from None
    if requirement.url:
        raise SpecError(
            f"{where}: {raw!r} installs from a direct URL, which bypasses the index the site "
            "allows. Publish the wheel to an allowed index and require it as NAME==VERSION."
        )
    from packaging.utils import canonicalize_name

    return PipLine(
        requirement=str(requirement),
        name=canonicalize_name(requirement.name),
        where=where,
        text=raw,
    )
