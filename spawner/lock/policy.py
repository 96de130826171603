"""What a lock may say before lockstep lets any of it reach a path, a URL or a command.

Guarantees: ``check_lock_fields`` refuses a locked package whose name, version or build
is not a plain token (no ``/``, ``..``, NUL or spaces), whose ``sha256``/``md5`` is not
lowercase hex of the right length, or whose URL is not ``https``/``http``/``file`` with a
plain archive file name under ``<channel>/<subdir>/`` (for ``manager: pip``: a plain
wheel or sdist file name, no ``..``); ``ChannelPolicy`` refuses channel
URLs the site did not allow (``c.Lockstep.channel_urls`` values and
``c.Lockstep.allowed_channels``), and ``http://`` for hosts not in
``c.Lockstep.insecure_channel_hosts``. Every error names the package (or spec), the
field, what is allowed and the fix, and is a ``LockstepError`` (the CLI exits 2).

Everything here is pure: no filesystem, network or environment. It must not import
conda-lock or rattler; it reads the attributes of conda-lock's models it is handed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from spawner.errors import LockstepError

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
MD5_RE = re.compile(r"^[0-9a-f]{32}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+!-]*$")
ARCHIVE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+!-]*\.(conda|tar\.bz2)$")
SCHEMES = ("https", "http", "file")
RELOCK = "re-create the lock with `lockstep lock` (do not edit conda-lock.yml by hand)"


class LockFieldError(LockstepError):
    """A lock entry with a field that is not safe to use in a path, URL or command."""


class ChannelError(LockstepError):
    """A channel URL the site does not allow."""


def safe_token(value: str) -> bool:
    """A name/version/build that cannot name another folder: no ``/``, ``..``, NUL, spaces."""
    return bool(TOKEN_RE.match(value or "")) and ".." not in value


def _fail(source: str, label: str, field: str, value: object, allowed: str) -> LockFieldError:
    return LockFieldError(
        f"{source}: package {label}: field '{field}' is {value!r}; allowed: {allowed}. "
        f"Fix: {RELOCK}. Nothing was fetched or written."
    )


def check_package(dep, *, source: str) -> None:
    """Refuse one locked package (conda-lock's ``LockedDependency``) with an unsafe field."""
    label = repr(getattr(dep, "name", "?"))
    for field, value in (("name", dep.name), ("version", dep.version)):
        if not safe_token(str(value)):
            raise _fail(source, label, field, value, "letters, digits and _ . + ! - (no '/', "
                        "'..' or NUL)")
    if dep.build and not safe_token(dep.build):
        raise _fail(source, label, "build", dep.build, "letters, digits and _ . + ! -")
    hashes = dep.hash
    if dep.manager == "conda" or hashes.sha256:
        if not SHA256_RE.match(hashes.sha256 or ""):
            raise _fail(source, label, "hash.sha256", hashes.sha256, "64 lowercase hex digits")
    if hashes.md5 and not MD5_RE.match(hashes.md5):
        raise _fail(source, label, "hash.md5", hashes.md5, "32 lowercase hex digits")
    problem = url_problem(dep.url, conda=dep.manager == "conda", platform=dep.platform)
    if problem:
        raise _fail(source, label, "url", dep.url, problem)


def url_problem(url: str, *, conda: bool, platform: str) -> str | None:
    """Why ``url`` is not a plain package URL (``None`` when it is)."""
    if "\0" in url or any(c.isspace() for c in url):
        return "a URL without NUL or whitespace"
    parts = urlsplit(url)
    if not conda:
        return pip_url_problem(url)
    if parts.scheme not in SCHEMES:
        return "an https://, http:// or file:// URL"
    if parts.query or parts.fragment:
        return "a URL without '?query' or '#fragment'"
    segments = unquote(parts.path).split("/")
    if any(s in (".", "..") for s in segments) or "\0" in unquote(parts.path):
        return "a URL path without '.' or '..' segments"
    if len(segments) < 3 or not ARCHIVE_RE.match(parts.path.rsplit("/", 1)[-1]):
        return "CHANNEL/SUBDIR/NAME-VERSION-BUILD.conda (or .tar.bz2)"
    if segments[-2] not in (platform, "noarch"):
        return f"a URL in the {platform} or noarch subdir"
    return None


PIP_FILE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+!-]*\.(whl|tar\.gz|zip)$")


def pip_url_problem(url: str) -> str | None:
    """Why a ``manager: pip`` URL is not a plain wheel/sdist URL (``None`` when it is)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        return "an https://, http:// or file:// URL"
    if parts.query:
        return "a URL without '?query'"
    segments = unquote(parts.path).split("/")
    if any(s in (".", "..") for s in segments):
        return "a URL path without '.' or '..' segments"
    if not PIP_FILE_RE.match(segments[-1]):
        return "a URL ending in a wheel (.whl) or sdist (.tar.gz, .zip) file name"
    return None


def check_lock_fields(packages: Iterable, *, source: str) -> None:
    """``check_package`` for every locked package (``Lockfile.package``)."""
    for dep in packages:
        check_package(dep, source=source)


def package_channel(url: str) -> str:
    """The channel a package URL comes from: ``CHANNEL/SUBDIR/FILE`` -> ``CHANNEL``."""
    return url.rsplit("/", 2)[0]


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc.rsplit("@", 1)[-1].lower()


@dataclass(frozen=True)
class ChannelPolicy:
    """The channel URLs a site allows; see ``c.Lockstep.allowed_channels``."""

    allowed: tuple[str, ...]
    insecure_hosts: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings, *, extra: Sequence[str] = ()) -> ChannelPolicy:
        """``channel_urls`` values + ``allowed_channels`` (+ ``extra``, e.g. --channel-url)."""
        urls = [*settings.channel_urls.values(), *settings.allowed_channels, *extra]
        return cls(
            allowed=tuple(dict.fromkeys(str(u).rstrip("/") for u in urls)),
            insecure_hosts=tuple(h.lower() for h in settings.insecure_channel_hosts),
        )

    def problem(self, url: str) -> str | None:
        """Why ``url`` (a channel) is refused, or ``None``."""
        url = url.rstrip("/")
        scheme = urlsplit(url).scheme
        if scheme not in SCHEMES:
            return "is not an https://, http:// or file:// URL"
        if url not in self.allowed:
            shown = ", ".join(self.allowed) or "(none)"
            return (
                f"is not an allowed channel (allowed: {shown}); if the site trusts it, add it "
                f"to c.Lockstep.allowed_channels = [{url!r}] in lockstep_config.py"
            )
        host = _host(url)
        if scheme == "http" and host not in self.insecure_hosts and host.split(":")[0] not in (
            self.insecure_hosts
        ):
            return (
                "uses plain http:// for a host not listed as insecure; use https://, or add "
                f"c.Lockstep.insecure_channel_hosts = [{host!r}] if the site accepts that"
            )
        return None

    def check_channel(self, url: str, *, source: str, what: str) -> None:
        problem = self.problem(url)
        if problem:
            raise ChannelError(f"{source}: {what} {url!r} {problem}. Nothing was fetched.")

    def check_packages(self, packages: Iterable, *, source: str) -> None:
        """Refuse a lock with a package from a channel that is not allowed."""
        for dep in packages:
            if dep.manager != "conda":
                continue
            channel = package_channel(dep.url)
            problem = self.problem(channel)
            if problem:
                raise ChannelError(
                    f"{source}: package {dep.name!r}: field 'url' ({dep.url}) is from channel "
                    f"{channel!r}, which {problem}; or re-lock against an allowed channel with "
                    "`lockstep lock`. Nothing was fetched or written."
                )
