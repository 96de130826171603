"""``lockstep lock``: solve a project's ``environment.yml`` and write its ``conda-lock.yml``.

Guarantees: the lock is written in conda-lock's format by conda-lock's writer, with
conda-lock's content hash (see ``condalock``), every package pinned by URL, sha256 and
md5; a channel URL the site does not allow (``LockInputs.channel_policy``) is refused
before anything is fetched; the write is atomic, so a failed solve leaves the previous
``conda-lock.yml`` byte-identical; an unsolvable spec raises ``LockstepError`` naming the
conflicting packages. Solving runs in the rattler worker subprocess, never in this process.

What a lock records beyond conda-lock's hash, so ``check_lock`` can see it go stale:
``metadata.channels`` holds the channels as the spec writes them (as conda-lock records
them: ``conda-lock lock`` refuses a lock whose channels differ from the spec's), and
``metadata.custom_metadata`` holds ``lockstep.channel.<name>`` (the URL each named channel
was solved against), ``lockstep.server-packages`` (what lockstep added to the solve) and
``lockstep.virtual-packages.<platform>`` (the machines it assumed, ``__cuda`` included) and,
when the project states one, ``lockstep.cuda`` (the CUDA minimum, see ``spawner.lock.cuda``).
Package URLs are the real ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spawner.lock import condalock
from spawner.lock.cuda import META_CUDA, CudaPlan, plan_cuda, unsolvable_hint, with_cuda
from spawner.lock.freshness import Freshness, conda_lock_verdict
from spawner.lock.pipplan import PipPlan, plan_pip
from spawner.lock.policy import ChannelPolicy
from spawner.lock.pypi import PipInputs
from spawner.lock.pypi import resolve as resolve_pypi
from spawner.lock.runner import WorkerError, run_worker
from spawner.lock.spec import (
    ResolvedChannel,
    SpecError,
    parse_channel_url_args,
    parse_environment,
    parse_virtual_packages,
    resolve_channels,
    select_platforms,
)

SPEC_NAME = "environment.yml"
LOCK_NAME = "conda-lock.yml"
META_CHANNEL = "lockstep.channel."
META_SERVER = "lockstep.server-packages"
META_VIRTUAL = "lockstep.virtual-packages."


@dataclass(frozen=True)
class LockInputs:
    """Site and command-line inputs to a solve (everything but the spec itself)."""

    channel_urls: Mapping[str, str] = field(default_factory=dict)
    platforms: tuple[str, ...] = ("linux-64",)
    requested_platforms: tuple[str, ...] = ()
    virtual_packages: Mapping[str, Sequence[str]] = field(default_factory=dict)
    server_packages: tuple[str, ...] = ()
    repodata_cache: Path | None = None
    allowed_channels: tuple[str, ...] = ()
    """Channel URLs allowed besides ``channel_urls``' values (``c.Lockstep.allowed_channels``)."""
    insecure_channel_hosts: tuple[str, ...] = ()
    """Hosts whose channels may be ``http://`` (``c.Lockstep.insecure_channel_hosts``)."""
    pip: PipInputs = field(default_factory=PipInputs)
    """How the ``pip:`` section is resolved (``c.Lockstep.pip_*``, ``pypi_mapping``)."""

    def channel_policy(self) -> ChannelPolicy:
        """The channels a spec may use: ``channel_urls``' values and ``allowed_channels``."""
        urls = [*self.channel_urls.values(), *self.allowed_channels]
        return ChannelPolicy(
            allowed=tuple(dict.fromkeys(str(u).rstrip("/") for u in urls)),
            insecure_hosts=tuple(h.lower() for h in self.insecure_channel_hosts),
        )

    @classmethod
    def from_settings(
        cls, settings, *, channel_url_args: Sequence[str] = (), platform_args: Sequence[str] = ()
    ) -> LockInputs:
        """Inputs from ``c.Lockstep.*``, with ``--channel-url``/``--platform`` on top."""
        return cls(
            channel_urls={**settings.channel_urls, **parse_channel_url_args(channel_url_args)},
            platforms=tuple(settings.platforms),
            requested_platforms=tuple(platform_args),
            virtual_packages={k: tuple(v) for k, v in settings.virtual_packages.items()},
            server_packages=tuple(settings.server_packages),
            repodata_cache=settings.cache_path("repodata"),
            allowed_channels=tuple(settings.allowed_channels),
            insecure_channel_hosts=tuple(settings.insecure_channel_hosts),
            pip=PipInputs.from_settings(settings),
        )


@dataclass(frozen=True)
class LockPlan:
    """Everything decided before the solve: what to solve, and what the lock must record."""

    spec_path: Path
    lock_path: Path
    platforms: tuple[str, ...]
    channels: tuple[ResolvedChannel, ...]
    specs: Mapping[str, tuple[str, ...]]
    added: tuple[str, ...]
    virtual_packages: Mapping[str, tuple[tuple[str, str, str], ...]]
    content_hash: Mapping[str, str]
    recorded_channels: tuple[Any, ...]
    """conda-lock's ``Channel`` list for ``metadata.channels``: as the spec writes them."""
    custom_metadata: Mapping[str, str]
    lock_spec: Any = field(default=None, repr=False, compare=False)
    """conda-lock's ``LockSpecification`` of the spec (what its content hash reads)."""
    pip: PipPlan = field(default_factory=PipPlan)
    """The spec's ``pip:`` requirements (``spawner.lock.pipplan``), empty when none."""
    cuda: CudaPlan = field(default_factory=CudaPlan)
    """The CUDA the project states (``spawner.lock.cuda``), empty when none."""


@dataclass(frozen=True)
class LockResult:
    lock_path: Path
    platforms: tuple[str, ...]
    packages: Mapping[str, int]
    added: tuple[str, ...]
    seconds: float


def locate(target: Path) -> tuple[Path, Path]:
    """``(spec_path, lock_path)`` for a project folder or a path to its environment.yml."""
    target = Path(target)
    spec_path = target if target.is_file() else target / SPEC_NAME
    if not spec_path.is_file():
        raise SpecError(
            f"{spec_path}: no such file; a project folder needs an {SPEC_NAME} with name, "
            "channels and dependencies."
        )
    return spec_path, spec_path.parent / LOCK_NAME


def plan_lock(target: Path, inputs: LockInputs) -> LockPlan:
    """Read the spec and decide the solve; reads files, solves nothing."""
    spec_path, lock_path = locate(target)
    spec = parse_environment(spec_path.read_text(), source=str(spec_path))
    platforms = select_platforms(
        spec=spec, requested=inputs.requested_platforms, default=inputs.platforms
    )
    channels = resolve_channels(
        spec.channels, channel_urls=inputs.channel_urls, source=str(spec_path)
    )
    policy = inputs.channel_policy()
    for channel in channels:
        what = "channel" if channel.name == channel.url else f"channel {channel.name!r}, URL"
        policy.check_channel(channel.url, source=str(spec_path), what=what)
    gpu = plan_cuda(spec_path.parent, platforms)
    virtual = {
        p: with_cuda(parse_virtual_packages(p, inputs.virtual_packages), gpu.versions.get(p))
        for p in platforms
    }
    pip = plan_pip(spec_path, platforms)  # conda-lock's reading; parser errors named
    lock_spec = pip.lock_spec
    urls = {c.name: c.url for c in channels}
    # conda-lock names a channel pinned by URL (``https://host/chan::pkg``) ``chan``
    urls.update({c.url.rsplit("/", 1)[-1]: c.url for c in channels if c.name == c.url})
    specs: dict[str, tuple[str, ...]] = {}
    added: dict[str, None] = {}
    for platform in platforms:
        deps = condalock.conda_requirements(lock_spec, platform)
        _check_channel_pins(deps, urls, spec_path)
        named = {d.name for d in deps}
        extra = [
            s for s in inputs.server_packages if condalock.versioned_dependency(s).name not in named
        ]
        added.update(dict.fromkeys(extra))
        specs[platform] = tuple(condalock.match_spec(d, channel_url=urls) for d in deps) + tuple(
            extra
        )
    vp_file = condalock.virtual_package_file(spec_path.parent)
    custom = {META_CHANNEL + c.name: c.url for c in channels if c.name != c.url}
    custom[META_SERVER] = ", ".join(added)
    custom.update(pip.custom_metadata)
    if gpu.requirement:
        custom[META_CUDA] = gpu.requirement
    custom.update({META_VIRTUAL + p: " ".join("=".join(t) for t in virtual[p]) for p in platforms})
    return LockPlan(
        spec_path=spec_path,
        lock_path=lock_path,
        platforms=platforms,
        channels=channels,
        specs=specs,
        added=tuple(added),
        virtual_packages=virtual,
        content_hash=condalock.content_hashes(lock_spec, virtual_packages=vp_file),
        recorded_channels=tuple(lock_spec.channels),
        custom_metadata=custom,
        lock_spec=lock_spec,
        cuda=gpu,
        pip=pip,
    )


def _check_channel_pins(deps, urls: Mapping[str, str], spec_path: Path) -> None:
    for dep in deps:
        if dep.conda_channel and dep.conda_channel not in urls:
            raise SpecError(
                f"{spec_path}: {dep.name} is pinned to channel {dep.conda_channel!r}, which "
                f"is not in channels ({', '.join(urls)}); add it to channels: or drop the "
                f"'{dep.conda_channel}::' prefix."
            )


def lock_environment(
    target: Path,
    inputs: LockInputs,
    *,
    progress: Callable[[str], None] | None = print,
    timeout: float = 900,
) -> LockResult:
    """Solve ``target``'s spec for each platform and write ``conda-lock.yml`` beside it."""
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    plan = plan_lock(target, inputs)
    if plan.added:
        say(f"adding server packages: {', '.join(plan.added)}")
    solved = solve(plan, inputs, progress=say, timeout=timeout)
    packages = []
    for platform in plan.platforms:
        say(f"{platform}: {len(solved[platform])} packages")
        packages.extend(solved[platform])
    pip = resolve_pypi(plan.pip.section, solved, virtual=plan.virtual_packages,
                       inputs=inputs.pip, source=str(plan.spec_path),
                       progress=say) if plan.pip.section.lines else {}
    lockfile = condalock.make_lockfile(
        packages,
        content_hash=plan.content_hash,
        channels=plan.recorded_channels,
        platforms=plan.platforms,
        sources=[condalock.source_entry(plan.lock_path, plan.spec_path)],
        custom_metadata=plan.custom_metadata,
        pip_packages=[p for platform in plan.platforms for p in pip.get(platform, [])],
    )
    condalock.write_lockfile(lockfile, plan.lock_path)
    say(f"wrote {plan.lock_path}")
    return LockResult(
        lock_path=plan.lock_path,
        platforms=plan.platforms,
        packages={p: len(solved[p]) for p in plan.platforms},
        added=plan.added,
        seconds=time.perf_counter() - started,
    )


def solve(plan: LockPlan, inputs: LockInputs, *, progress, timeout: float) -> dict[str, list[dict]]:
    """Run the solve in the worker; map its failures to errors people can act on."""
    request = {
        "op": "solve",
        "channels": [c.url for c in plan.channels],
        "cache_dir": str(inputs.repodata_cache) if inputs.repodata_cache else None,
        "jobs": [
            {
                "platform": p,
                "specs": list(plan.specs[p]),
                "virtual_packages": [list(t) for t in plan.virtual_packages[p]],
            }
            for p in plan.platforms
        ],
    }
    try:
        return run_worker(request, progress=progress, timeout=timeout)["platforms"]
    except WorkerError as exc:
        platform = exc.details.get("platform", "")
        if exc.kind == "unsolvable":
            raise SpecError(
                f"{plan.spec_path}: cannot solve for {platform}; {exc}\n"
                "Loosen or remove the pins on the packages named above (server packages "
                f"added by lockstep: {', '.join(plan.added) or 'none'}); "
                f"{plan.lock_path.name} was left unchanged."
                + unsolvable_hint(str(exc), plan.cuda, platform)
            ) from None
        if exc.kind == "spec":
            raise SpecError(
                f"{plan.spec_path}: a package spec is not one the solver reads: {exc}. "
                "Write it as NAME, NAME=VERSION, or NAME >=LOW,<HIGH."
            ) from None
        if exc.kind == "channel":
            raise SpecError(
                f"{plan.spec_path}: could not read the channels "
                f"({', '.join(c.url for c in plan.channels)}) for {platform}: {exc}. Check "
                "the URLs in c.Lockstep.channel_urls / --channel-url and that they answer; "
                f"{plan.lock_path.name} was left unchanged."
            ) from None
        raise


def check_lock(target: Path, inputs: LockInputs) -> Freshness:
    """Whether ``conda-lock.yml`` still matches the spec and the site's lock inputs."""
    plan = plan_lock(target, inputs)
    if not plan.lock_path.is_file():
        return Freshness(
            current=False, source=str(plan.spec_path), reasons=(f"{plan.lock_path} does not exist",)
        )
    lockfile = condalock.read_lockfile(plan.lock_path)
    verdict = conda_lock_verdict(
        lockfile,
        plan.lock_spec,
        plan.platforms,
        virtual_packages=condalock.virtual_package_file(plan.spec_path.parent),
    )
    reasons = list(verdict)
    recorded = set(lockfile.metadata.platforms)
    if extra := sorted(recorded - set(plan.platforms)):
        reasons.append(f"the lock has platform(s) {', '.join(extra)} that are no longer asked for")
    have = {
        k: v
        for k, v in (lockfile.metadata.custom_metadata or {}).items()
        if k.startswith("lockstep.")
    }
    for key in sorted(set(have) | set(plan.custom_metadata)):
        if have.get(key) != plan.custom_metadata.get(key):
            reasons.append(
                f"{key} changed ({have.get(key)!r} -> {plan.custom_metadata.get(key)!r})"
            )
    return Freshness(current=not reasons, source=str(plan.spec_path), reasons=tuple(reasons))
