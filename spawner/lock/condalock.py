"""The one door to conda-lock: its spec parser, content hash, lockfile models and writer.

Guarantees: lockstep never reimplements conda-lock's file format or its content hash.
Everything that must agree with ``conda-lock lock --check-input-hash`` goes through this
module, which calls conda-lock's own code (``make_lock_spec``, ``compute_content_hashes``,
``backwards_compatible_content_hashes``, the ``v2prelim`` models,
``write_conda_lock_file`` and ``parse_conda_lock_file``). conda-lock is imported lazily
(about a second), so importing this module is cheap. It must not import rattler.

How the content hash agrees with conda-lock: it is computed from the user's spec file
exactly as ``conda-lock lock -f environment.yml -p PLATFORM`` run in the lock's folder
would: conda-lock's parser (selectors, ``nodefaults`` dropped, channels as written) and
conda-lock's default virtual packages, or a ``virtual-packages.yml`` beside the lock, as
conda-lock picks up from its working directory. lockstep's own inputs (server packages it
adds, the site's virtual packages, channel URLs) are not part of that hash; they are
recorded in ``metadata.custom_metadata`` and ``metadata.channels`` and checked by lockstep.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spawner.errors import LockstepError

if TYPE_CHECKING:  # pragma: no cover
    from conda_lock.lockfile.v2prelim.models import Lockfile
    from conda_lock.models.lock_spec import LockSpecification
    from conda_lock.virtual_package import FakeRepoData

VIRTUAL_PACKAGE_FILES = ("virtual-packages.yml", "virtual-packages.yaml")
"""Files conda-lock reads virtual packages from when it runs in the lock's folder."""


class LockfileError(LockstepError):
    """A lock file that cannot be read."""


@functools.cache
def identity_mapping_url() -> str:
    """A local, empty PyPI-to-conda name mapping, so parsing never needs the network.

    conda-lock downloads a name mapping when a spec has pip entries; it is only used to
    turn PyPI names into conda names, and ``pip`` (the one name an environment.yml pip
    section adds) maps to itself either way.
    """
    fd, path = tempfile.mkstemp(prefix="lockstep-pypi-mapping-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        handle.write("{}")
    atexit.register(_remove_quietly, path)
    return path


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def lock_specification(
    sources: Sequence[Path], *, platforms: Sequence[str], mapping_url: str | None = None
) -> LockSpecification:
    """conda-lock's reading of ``sources`` for ``platforms`` (``-f ... -p ...``)."""
    from conda_lock.src_parser import make_lock_spec

    return make_lock_spec(
        src_files=[Path(s) for s in sources],
        platform_overrides=list(platforms),
        mapping_url=mapping_url or identity_mapping_url(),
    )


def declared_platforms(sources: Sequence[Path]) -> list[str]:
    """The platforms the spec files declare (what conda-lock locks without ``-p``)."""
    from conda_lock.src_parser import _parse_platforms_from_srcs

    return list(_parse_platforms_from_srcs([Path(s) for s in sources]))


def virtual_package_file(directory: Path) -> Path | None:
    """The ``virtual-packages.yml`` conda-lock would pick up in ``directory``, if any."""
    for name in VIRTUAL_PACKAGE_FILES:
        if (Path(directory) / name).is_file():
            return Path(directory) / name
    return None


@functools.cache
def _virtual_package_repo(spec_file: str | None) -> FakeRepoData:
    from conda_lock.virtual_package import (
        default_virtual_package_repodata,
        virtual_package_repo_from_specification,
    )

    if spec_file is None:
        return default_virtual_package_repodata()
    return virtual_package_repo_from_specification(Path(spec_file))


def content_hashes(
    lock_spec: LockSpecification, *, virtual_packages: Path | None
) -> dict[str, str]:
    """conda-lock's ``content_hash`` per platform, as ``conda-lock lock`` would write it."""
    from conda_lock.content_hash import compute_content_hashes

    repo = _virtual_package_repo(str(virtual_packages) if virtual_packages else None)
    return dict(compute_content_hashes(lock_spec, repo))


def accepted_hashes(
    lock_spec: LockSpecification, platform: str, *, virtual_packages: Path | None
) -> set[str]:
    """Every hash conda-lock's ``--check-input-hash`` accepts as unchanged for ``platform``."""
    from conda_lock.content_hash import backwards_compatible_content_hashes

    repo = _virtual_package_repo(str(virtual_packages) if virtual_packages else None)
    return set(backwards_compatible_content_hashes(lock_spec, repo, platform))


def conda_requirements(lock_spec: LockSpecification, platform: str) -> list[Any]:
    """The conda dependencies conda-lock would solve for ``platform`` (selectors applied)."""
    return [d for d in lock_spec.dependencies[platform] if d.manager == "conda"]


def versioned_dependency(spec: str) -> Any:
    """A conda match spec string as conda-lock's ``VersionedDependency``."""
    from conda_lock.src_parser.conda_common import conda_spec_to_versioned_dep

    try:
        return conda_spec_to_versioned_dep(spec, "main")
    except RuntimeError as exc:
        raise LockstepError(f"{spec!r} is not a conda match spec ({exc.__cause__}).") from None


def match_spec(dep: Any, *, channel_url: Mapping[str, str]) -> str:
    """A ``VersionedDependency`` back as a match spec string rattler parses."""
    text = dep.name
    if dep.conda_channel:
        text = f"{channel_url.get(dep.conda_channel, dep.conda_channel)}::{text}"
    version = dep.version or ("*" if dep.build else "")
    return " ".join(p for p in (text, version, dep.build or "") if p)


def depends_to_dependencies(depends: Sequence[str]) -> dict[str, str]:
    """A record's ``depends`` as conda-lock's ``dependencies`` mapping (its solver's code)."""
    from conda_lock._vendor.conda.models.match_spec import MatchSpec

    grouped: dict[str, list[Any]] = {}
    for dep in depends:
        spec = MatchSpec(dep)
        grouped.setdefault(spec.name, []).append(spec)
    result = {}
    for name, specs in grouped.items():
        merged = specs[0] if len(specs) == 1 else MatchSpec.merge(specs)[0]
        result[name] = merged.version.spec_str if merged.version is not None else ""
    return result


def make_lockfile(
    packages: Sequence[Mapping[str, Any]],
    *,
    content_hash: Mapping[str, str],
    channels: Sequence[Any],
    platforms: Sequence[str],
    sources: Sequence[str],
    custom_metadata: Mapping[str, str],
    pip_packages: Sequence[Mapping[str, Any]] = (),
) -> Lockfile:
    """A conda-lock ``Lockfile`` from solved records (category main, not optional).

    ``pip_packages`` (``pypi.resolve``'s dicts) become ``manager: pip`` entries: URL,
    ``hash: {sha256}`` and what they depend on (``{name: spec}``), as conda-lock writes them."""
    from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency, Lockfile, LockMeta
    from conda_lock.models.channel import Channel

    locked = [
        LockedDependency(
            name=p["name"],
            version=p["version"],
            manager="conda",
            platform=p["platform"],
            dependencies=depends_to_dependencies(p["depends"]),
            url=p["url"],
            hash=HashModel(md5=p["md5"], sha256=p["sha256"]),
            build=p["build"],
            categories={"main"},
        )
        for p in packages
    ] + [
        LockedDependency(
            name=p["name"],
            version=p["version"],
            manager="pip",
            platform=p["platform"],
            dependencies=dict(p["depends"]) if isinstance(p["depends"], Mapping)
            else dict.fromkeys(p["depends"], "*"),
            url=p["url"],
            hash=HashModel(sha256=p["sha256"]),
            categories={"main"},
        )
        for p in pip_packages
    ]
    return Lockfile(
        package=locked,
        metadata=LockMeta(
            content_hash=dict(content_hash),
            channels=[Channel.from_string(c) if isinstance(c, str) else c for c in channels],
            platforms=list(platforms),
            sources=list(sources),
            custom_metadata=dict(sorted(custom_metadata.items())) or None,
        ),
    )


def locked_build(dep: Any) -> str:
    """A conda-lock entry's build string; older locks leave it out of the entry, so it is
    read from the archive's file name (``name-version-build.conda``). See ``LockedPackage``."""
    from spawner.lock.package import LockedPackage

    return LockedPackage(name=dep.name, version=str(dep.version), manager=dep.manager,
                         url=dep.url or "", build_string=dep.build or "").build


def source_entry(lock_path: Path, source: Path) -> str:
    """How conda-lock names ``source`` in ``metadata.sources``: relative to the lock."""
    from conda_lock.common import relative_path

    return relative_path(Path(lock_path).parent, Path(source))


def write_lockfile(lockfile: Lockfile, path: Path) -> None:
    """Write with conda-lock's writer, atomically: nothing changes at ``path`` on failure.

    The file is written under its final name in a private folder beside ``path`` (the
    name appears in conda-lock's header), flushed to disk, then moved over ``path``.
    """
    from conda_lock.lockfile import write_conda_lock_file

    path = Path(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        staged = staging / path.name
        write_conda_lock_file(lockfile, staged, metadata_choices=None)
        with staged.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(staged, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_lockfile(path: Path) -> Lockfile:
    """Parse a ``conda-lock.yml`` as conda-lock's ``parse_conda_lock_file`` does (v1, v2).

    The same steps with conda-lock's own models (v1 converted to v2, then conda-lock's
    topological sort); only the YAML reader is libyaml's when PyYAML has it, which reads
    a 100-package lock in a third of the time. A test pins the result to conda-lock's.
    Every package's name, version, build, hashes and URL are then checked
    (``policy.check_lock_fields``): a lock that could steer a path or URL is refused here.
    """
    import yaml
    from conda_lock.lockfile.v1.models import Lockfile as LockfileV1
    from conda_lock.lockfile.v2prelim.models import Lockfile, lockfile_v1_to_v2
    from pydantic import ValidationError

    path = Path(path)
    if not path.is_file():
        raise LockfileError(f"{path}: no such lock file; create it with `lockstep lock`.")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        content = yaml.load(path.read_text(), Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise LockfileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(content, dict):
        raise LockfileError(f"{path}: not a conda-lock file (no mapping at the top level).")
    version = content.pop("version", None)
    try:
        if version == 1:
            lockfile = lockfile_v1_to_v2(LockfileV1.model_validate(content))
        elif version == 2:
            lockfile = Lockfile.model_validate(content)
        else:
            raise LockfileError(
                f"{path}: conda-lock file version {version!r} is not one lockstep reads (1, 2)."
            )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise LockfileError(f"{path}: not a conda-lock file: {problems}") from None
    from spawner.lock.policy import check_lock_fields

    check_lock_fields(lockfile.package, source=str(path))
    lockfile.toposort_inplace()
    return lockfile
