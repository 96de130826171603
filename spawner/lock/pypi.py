"""Resolve a spec's ``pip:`` section with uv, per platform, with the conda solution fixed.

Guarantees: runs after the conda solve and never changes it: every PyPI distribution the
conda packages already provide (``condadists.provided``) is offered to uv only as an
empty stand-in wheel pinned to conda's version, and dropped from the result, so a pip
package is never installed over or beside a conda one; a pip requirement those pins
cannot satisfy is refused naming both packages. Only wheels are locked (``--no-build``)
unless the site allows sdists; each locked package gets the one wheel its platform
installs (best tag first), with URL and sha256 from the index, and its dependencies as
conda-lock writes them (``{name: spec}`` from the file's own ``Requires-Dist``, markers
evaluated for the platform: ``pipdeps``; the file is fetched, verified, into the cache).
Index URLs must be ones the site allows (``PipInputs.check_index``). uv runs as
``python -m uv`` in a subprocess with no user config and a private cache under the
lockstep cache; nothing is written outside a temporary folder and those caches. Errors
are ``SpecError`` naming the line or package and the fix. It must not import rattler or conda-lock.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from spawner.lock import condadists, pipdeps
from spawner.lock.pipspec import PipSection
from spawner.lock.pipwheels import MAC, best_file, stub_wheel
from spawner.lock.spec import SpecError

DEFAULT_INDEX = "https://pypi.org/simple"
UV_PLATFORMS = {
    "linux-64": "x86_64-manylinux_2_{glibc}",
    "linux-aarch64": "aarch64-manylinux_2_{glibc}",
    "osx-64": "x86_64-apple-darwin",
    "osx-arm64": "aarch64-apple-darwin",
    "win-64": "x86_64-pc-windows-msvc",
}


@dataclass(frozen=True)
class PipInputs:
    """Site inputs to a pip resolve (``c.Lockstep.pip_*`` and ``pypi_mapping``)."""

    index_url: str = DEFAULT_INDEX
    allowed_indexes: tuple[str, ...] = ()
    insecure_hosts: tuple[str, ...] = ()
    mapping_file: Path | None = None
    allow_sdists: bool = False
    cache_dir: Path = Path.home() / ".cache" / "lockstep" / "pkgs"
    """The package cache (``settings.cache_path("pkgs")``); uv's cache lives beside it."""
    mirrors: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 300

    @classmethod
    def from_settings(cls, settings) -> PipInputs:
        """``c.Lockstep.pip_index_url``, ``pip_allowed_indexes``, ``pypi_mapping``..."""
        return cls(
            index_url=settings.pip_index_url.rstrip("/"),
            allowed_indexes=tuple(u.rstrip("/") for u in settings.pip_allowed_indexes),
            insecure_hosts=tuple(h.lower() for h in settings.insecure_channel_hosts),
            mapping_file=Path(settings.pypi_mapping) if settings.pypi_mapping else None,
            allow_sdists=settings.pip_allow_sdists,
            cache_dir=settings.cache_path("pkgs"),
            mirrors=dict(settings.mirrors),
        )

    def check_index(self, url: str, *, where: str) -> None:
        """Refuse an index the site does not allow, or plain http to an unlisted host."""
        allowed = [u.rstrip("/") for u in (self.index_url, *self.allowed_indexes)]
        parts = urlsplit(url)
        host = parts.netloc.rsplit("@", 1)[-1].lower()
        if url.rstrip("/") not in allowed:
            raise SpecError(
                f"{where}: package index {url!r} is not allowed (allowed: {', '.join(allowed)});"
                f" if the site trusts it, add c.Lockstep.pip_allowed_indexes = [{url!r}] in "
                "lockstep_config.py. Nothing was fetched."
            )
        if parts.scheme != "https" and not (
            parts.scheme == "http" and (host in self.insecure_hosts
                                        or host.split(":")[0] in self.insecure_hosts)
        ):
            raise SpecError(
                f"{where}: package index {url!r} is not https://; use https, or list its host "
                f"in c.Lockstep.insecure_channel_hosts = [{host!r}] if the site accepts that."
            )


def python_of(records: Sequence[Mapping]) -> str | None:
    return next((r["version"] for r in records if r["name"] == "python"), None)


def glibc_of(virtual: Sequence[Sequence[str]]) -> str:
    version = next((v for n, v, _b in virtual if n == "__glibc"), "2.17")
    minor = int(re.match(r"^2\.(\d+)", version)[1]) if re.match(r"^2\.(\d+)", version) else 17
    return str(min(max(minor, 17), 40))


def resolve(
    section: PipSection,
    solved: Mapping[str, list[dict]],
    *,
    virtual: Mapping[str, Sequence[Sequence[str]]],
    inputs: PipInputs,
    source: str,
    progress: Callable[[str], None],
) -> dict[str, list[dict]]:
    """Locked pip packages per platform (dicts: name, version, url, sha256, depends...)."""
    index = section.index_url or inputs.index_url
    inputs.check_index(index, where=source)
    for extra in section.extra_index_urls:
        inputs.check_index(extra, where=source)
    mapping = condadists.read_mapping(inputs.mapping_file)
    result = {}
    for platform, records in solved.items():
        if platform not in UV_PLATFORMS:
            raise SpecError(
                f"{source}: pip packages cannot be locked for {platform} (lockstep resolves "
                f"PyPI packages for {', '.join(UV_PLATFORMS)}); drop that platform or the pip "
                "section."
            )
        python = python_of(records)
        if python is None:
            raise SpecError(
                f"{source}: the pip section needs python in the environment, and the conda "
                f"solution for {platform} has none; add python (e.g. python=3.11) to "
                "dependencies."
            )
        have = condadists.provided(
            records, cache_dir=inputs.cache_dir, mirrors=inputs.mirrors, mapping=mapping
        )
        _check_top_level(section, have, platform)
        progress(f"{platform}: resolving {len(section.lines)} pip requirement(s) with uv...")
        tags_platform = UV_PLATFORMS[platform].format(glibc=glibc_of(virtual.get(platform, ())))
        locked = _run_uv(section, have, index=index, python=python, uv_platform=tags_platform,
                         inputs=inputs, source=source, platform=platform)
        result[platform] = locked
        progress(f"{platform}: {len(locked)} pip packages")
    return result


def _check_top_level(section: PipSection, have: Mapping, platform: str) -> None:
    from packaging.requirements import Requirement

    for line in section.lines:
        if line.name not in have:
            continue
        version, conda = have[line.name]
        spec = SpecifierSet(str(Requirement(line.requirement).specifier))
        if spec and not spec.contains(version, prereleases=True):
            raise SpecError(
                f"{line.where}: pip requirement {line.text!r} conflicts with conda package "
                f"{conda} {version} on {platform}, which already provides {line.name}; a pip "
                "package never replaces a conda one. Loosen the pip pin, or pin "
                f"{conda} in the conda dependencies to a version that matches."
            )


def _uv_env(cache: Path, platform: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY",
            "NO_PROXY", "https_proxy", "http_proxy", "no_proxy")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update({"UV_CACHE_DIR": str(cache), "UV_NO_PROGRESS": "1", "NO_COLOR": "1",
                "UV_HTTP_RETRIES": "1"})
    if platform in MAC:
        env["MACOSX_DEPLOYMENT_TARGET"] = "{}.{}".format(*MAC[platform][1])
    return env


def _run_uv(section, have, *, index, python, uv_platform, inputs, source, platform) -> list[dict]:
    cache = Path(inputs.cache_dir).parent / "uv"
    with tempfile.TemporaryDirectory(prefix="lockstep-pip-") as tmp:
        work = Path(tmp)
        (work / "stubs").mkdir()
        (work / "requirements.in").write_text("\n".join(section.requirements) + "\n")
        (work / "constraints.txt").write_text(
            "".join(f"{n}=={v}\n" for n, (v, _c) in have.items())
        )
        for name, (version, _conda) in have.items():
            stub_wheel(work / "stubs", name, version)
        base = [sys.executable, "-m", "uv", "pip", "compile", "requirements.in", "--no-config",
                "--no-header", "--quiet", "--python-platform", uv_platform, "--python-version",
                python, "-c", "constraints.txt", "--find-links", "stubs", "--index-url", index,
                "--index-strategy", "unsafe-best-match"]
        for extra in section.extra_index_urls:
            base += ["--extra-index-url", extra]
        if not inputs.allow_sdists:
            base += ["--no-build"]
        lock = _call(base + ["--format", "pylock.toml"], work, cache, inputs, source, platform)
        annotated = _call(base + ["--annotation-style", "line", "--no-strip-markers"], work,
                          cache, inputs, source, platform)
    parents = _parents(annotated)
    packages = tomllib.loads(lock).get("packages", [])
    locked = []
    for package in packages:
        name = canonicalize_name(package["name"])
        if name in have:
            continue
        chosen = best_file(package, platform=platform, python=python, glibc=uv_platform,
                           allow_sdists=inputs.allow_sdists, source=source)
        locked.append({"platform": platform, "name": name, "version": str(package["version"]),
                       "url": chosen["url"], "sha256": chosen["sha256"],
                       "depends": sorted(c for c, ps in parents.items() if name in ps)})
    with_specs(locked, platform=platform, python=python, inputs=inputs)
    return sorted(locked, key=lambda p: p["name"])


def with_specs(locked: list[dict], *, platform: str, python: str, inputs: PipInputs) -> None:
    """Each entry's ``depends`` as conda-lock's ``{name: spec}``, from the locked file's
    own ``Requires-Dist`` for ``platform`` (``pipdeps``); uv's names with ``*`` when an
    sdist leaves them dynamic. Files are read concurrently (and cached by sha256)."""

    def one(entry: dict) -> None:
        requires = pipdeps.read_requires(
            name=entry["name"], version=entry["version"], url=entry["url"],
            sha256=entry["sha256"], cache_dir=inputs.cache_dir, mirrors=inputs.mirrors,
        )
        entry["depends"] = (
            dict.fromkeys(entry["depends"], "*") if requires is None
            else pipdeps.dependencies(requires, platform=platform, python=python)
        )

    with ThreadPoolExecutor(max(1, min(8, len(locked)))) as pool:
        list(pool.map(one, locked))


def _parents(text: str) -> dict[str, set[str]]:
    """child -> the packages that require it, from uv's ``# via a, b`` annotations."""
    result: dict[str, set[str]] = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==\S+.*#\s*via\s+(.*)$", line)
        if match:
            via = {canonicalize_name(v.strip()) for v in match[2].split(",")}
            result[canonicalize_name(match[1])] = via
    return result


def _call(argv, work, cache, inputs, source, platform) -> str:
    try:
        proc = subprocess.run(argv, cwd=work, env=_uv_env(cache, platform), capture_output=True,
                              text=True, timeout=inputs.timeout)
    except subprocess.TimeoutExpired:
        raise SpecError(
            f"{source}: resolving the pip packages for {platform} took more than "
            f"{inputs.timeout:.0f} s; check that the package index answers."
        ) from None
    if proc.returncode != 0:
        raise SpecError(explain_uv_failure(proc.stderr, source=source, platform=platform))
    return proc.stdout


def explain_uv_failure(stderr: str, *, source: str, platform: str) -> str:
    """uv's refusal as a lockstep message: what failed, and what to do."""
    text = "\n".join(
        ln for ln in stderr.strip().splitlines() if ln.strip() and not ln.startswith("warning:")
    )[-2500:]
    lowered = text.lower()
    named = re.search(r"for `([^`]+)`", text) or re.search(r"Because (\S+?)(==|>|<| )", text)
    package = named[1] if named else "the package named above"
    if any(s in lowered for s in ("failed to fetch", "dns error", "timed out",
                                  "error sending request", "tcp connect", "request failed")):
        fix = ("the package index did not answer; check the index URL (--index-url, "
               "c.Lockstep.pip_index_url), the network or proxy, and try again")
    elif "matching platform tag" in lowered:
        fix = (f"{package} has no wheel for {platform}: pin a version of it that has one, "
               f"use its conda package instead, or drop {platform} from platforms:")
    elif "no-build" in lowered or "no usable wheels" in lowered or "source distribution" in (
        lowered
    ):
        fix = (f"{package} has only a source distribution, which lockstep does not build: "
               f"pin a version with a wheel for {platform}, or use the conda package instead")
    elif "unsatisfiable" in lowered or "constraint" in lowered:
        fix = ("the conda packages of this environment are fixed (a pip package never "
               "replaces one); loosen the pip pins named above, or change the conda pins so "
               "the versions fit")
    else:
        fix = "fix or loosen the pip requirements named above"
    return (
        f"{source}: cannot lock the pip packages for {platform}:\n{text}\nFix: {fix}; "
        "conda-lock.yml was left unchanged."
    )
