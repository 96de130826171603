"""The pip side of ``lockstep lock``: read the spec's ``pip:`` section, hash, resolve, record.

Guarantees: ``plan_pip`` reads ``environment.yml`` (and its ``-r`` files, relative to the
file that names them) and returns conda-lock's ``LockSpecification`` of it; every line
conda-lock's parser would reject (a conda line with ``;``, an unparsable pip line) is a
``SpecError`` naming the file, the line number and the fix, never a conda-lock traceback.
When the pip section uses options conda-lock's parser does not read (``-r``,
``--index-url``, ``--extra-index-url``), the content hash is computed by conda-lock from a
copy of the spec with the ``-r`` files expanded and the options left out (conda-lock
itself cannot read such a spec; the indexes are recorded in ``lockstep.pip-indexes``).
``pypi.resolve`` runs after the conda solve, when the section has lines. No rattler here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spawner.errors import LockstepError
from spawner.lock import condalock
from spawner.lock.pipspec import PipSection, line_number, parse_pip_section
from spawner.lock.spec import SpecError

META_PIP_INDEXES = "lockstep.pip-indexes"


@dataclass(frozen=True)
class PipPlan:
    """A spec's pip requirements, conda-lock's reading of the spec, and what to record."""

    section: PipSection = field(default_factory=lambda: PipSection(lines=()))
    lock_spec: Any = field(default=None, repr=False, compare=False)
    custom_metadata: Mapping[str, str] = field(default_factory=dict)


def pip_entries(raw: object) -> list[object] | None:
    """The ``pip:`` list of a parsed ``environment.yml`` (``None`` when it has none)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("dependencies"), list):
        return None
    found = None
    for item in raw["dependencies"]:
        if isinstance(item, dict) and "pip" in item:
            entries = item["pip"] or []
            found = (found or []) + (entries if isinstance(entries, list) else [entries])
    return found


def _reader(spec_dir: Path) -> Callable[[str, str], tuple[str, Sequence[str]]]:
    def include(name: str, from_source: str) -> tuple[str, Sequence[str]]:
        base = Path(from_source).parent if from_source else spec_dir
        path = (base / name) if not Path(name).is_absolute() else Path(name)
        try:
            return str(path), path.read_text().splitlines()
        except OSError as exc:
            raise SpecError(
                f"{from_source}: -r {name}: cannot read {path} ({exc.strerror}); the path is "
                "relative to the file that names it. Fix the name or add the file."
            ) from None

    return include


def check_conda_lines(raw: dict, text: str, *, source: str) -> None:
    """Refuse a conda dependency conda-lock's parser rejects, naming its line."""
    for item in raw.get("dependencies") or []:
        if not isinstance(item, str):
            continue
        try:
            condalock.versioned_dependency(item)
        except LockstepError as exc:
            number = line_number(text, item)
            where = f"{source}:{number}" if number else source
            hint = (" Environment markers (';') belong to pip requirements: move it under "
                    "pip:, or use a selector comment such as '# [linux]'." if ";" in item else "")
            raise SpecError(
                f"{where}: dependency {exc} Write it as NAME, NAME=VERSION, NAME>=LOW,<HIGH "
                f"or CHANNEL::NAME.{hint}"
            ) from None


def plan_pip(spec_path: Path, platforms: Sequence[str]) -> PipPlan:
    """Read ``spec_path``'s pip section and conda-lock's lock specification of the spec."""
    spec_path = Path(spec_path)
    text = spec_path.read_text()
    raw = yaml.safe_load(text) or {}
    check_conda_lines(raw, text, source=str(spec_path))
    entries = pip_entries(raw)
    if entries is None:
        return PipPlan(lock_spec=_lock_spec(spec_path, platforms))
    section = parse_pip_section(
        entries, source=str(spec_path), text=text, include=_reader(spec_path.parent)
    )
    plain = all(isinstance(e, str) and not e.strip().startswith("-") for e in entries)
    if plain:
        lock_spec = _lock_spec(spec_path, platforms)
    else:
        lock_spec = _expanded_lock_spec(spec_path, raw, section, platforms)
    custom = {}
    if section.index_url or section.extra_index_urls:
        custom[META_PIP_INDEXES] = " ".join(
            [section.index_url or "(site default)", *section.extra_index_urls]
        )
    return PipPlan(section=section, lock_spec=lock_spec, custom_metadata=custom)


def _lock_spec(spec_path: Path, platforms: Sequence[str]):
    try:
        return condalock.lock_specification([spec_path], platforms=platforms)
    except LockstepError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser error conda-lock raises
        raise SpecError(
            f"{spec_path}: conda-lock cannot read this spec ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). Fix the line it names."
        ) from None


def _expanded_lock_spec(spec_path: Path, raw: dict, section: PipSection, platforms):
    copy = dict(raw)
    copy["dependencies"] = [
        ({"pip": list(section.requirements)} if isinstance(d, dict) and "pip" in d else d)
        for d in raw["dependencies"]
    ]
    with tempfile.TemporaryDirectory(prefix="lockstep-spec-") as tmp:
        expanded = Path(tmp) / spec_path.name
        expanded.write_text(yaml.safe_dump(copy, sort_keys=False))
        spec = _lock_spec(expanded, platforms)
    spec.sources = [spec_path]
    return spec
