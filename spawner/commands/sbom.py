"""``lockstep sbom TARGET [-o FILE]``: a CycloneDX 1.5 bill of materials from a lock.

TARGET is a ``conda-lock.yml`` (or the project folder holding one), an image pinned by
digest (``REPO@sha256:...``), or a project name with ``--stage``. For an image, the lock
is ``--lock FILE`` (refused unless its hash is the image's ``org.lockstep.lock-hash``
label), else the one in ``c.Lockstep.environments_dir`` whose hash equals that label;
when none matches, the packages are read from the image's own ``/opt/env/conda-meta``.

Licenses come from each package's metadata (``info/about.json``, else ``info/index.json``)
in the package cache (``<cache>/pkgs``), from the archive itself for ``file://`` channels,
and, for an image, from its ``conda-meta`` records. A pip sdist the build built into a
wheel gets that wheel's sha256 and backend from the build record beside the lock
(``build-record.json``, when it is of the same lock); for an image, an sdist that record
does not cover gets them from the image's own ``*.dist-info/LOCKSTEP_BUILT.json`` (read
from the registry, only when the lock has such an sdist). ``spawner.sbom.cyclonedx``
builds the document.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from spawner.errors import LockstepError
from spawner.labels import MANAGED, ROLE
from spawner.launch.spec import DIGEST_REF_RE
from spawner.lock.package import LockedPackage
from spawner.sbom import cyclonedx as sbom
from spawner.settings import ENV_PREFIX


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "sbom",
        help="write a CycloneDX 1.5 SBOM of a lock or an image",
        description="Write a CycloneDX 1.5 JSON bill of materials: every locked package "
        "with its purl, SHA-256, download URL and license. TARGET: a conda-lock.yml, a "
        "project folder, an image REPO@sha256:..., or a project name with --stage.",
    )
    parser.add_argument("target", metavar="TARGET", help="lock file, project, or image ref")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    parser.add_argument(
        "--stage", metavar="STAGE", help="with a project name: the image STAGE points at"
    )
    parser.add_argument(
        "--lock",
        metavar="FILE",
        help="with an image: the conda-lock.yml it was built from, when that "
        "lock is not in the environments folder",
    )
    parser.add_argument("--platform", default="linux-64", help="platform (default linux-64)")
    parser.add_argument(
        "--timestamp",
        action="store_true",
        help="stamp metadata.timestamp (the output is otherwise reproducible)",
    )
    parser.set_defaults(func=run)


# -- license texts --------------------------------------------------------------------------


def _license_from_json(data: bytes) -> str:
    try:
        value = json.loads(data).get("license") or ""
    except (json.JSONDecodeError, AttributeError):
        return ""
    return str(value).strip()


def _archive_license(path: Path) -> str:
    from conda_package_streaming.package_streaming import stream_conda_info

    found: dict[str, str] = {}
    try:
        for tar, member in stream_conda_info(str(path)):
            if member.name in ("info/about.json", "info/index.json"):
                found[member.name] = _license_from_json(tar.extractfile(member).read())
    except Exception:  # an unreadable archive has no license to offer
        return ""
    return found.get("info/about.json") or found.get("info/index.json") or ""


def cached_licenses(packages: Iterable[LockedPackage], pkgs_dir: Path) -> dict[str, str]:
    """License per package stem, from the extracted cache, the cached archive, or a
    ``file://`` channel archive (the first that has one)."""
    found = {}
    for package in packages:
        if package.manager != "conda":
            continue
        text = ""
        for name in ("about.json", "index.json"):
            meta = pkgs_dir / package.stem / "info" / name
            if meta.is_file():
                text = _license_from_json(meta.read_bytes())
            if text:
                break
        candidates = [pkgs_dir / "archives" / package.sha256 / package.filename]
        url = urlsplit(package.url)
        if url.scheme == "file":
            candidates.append(Path(unquote(url.path)))
        for archive in candidates:
            if text:
                break
            if archive.is_file():
                text = _archive_license(archive)
        if text:
            found[package.stem] = text
    return found


def image_conda_meta(reference: str) -> list[dict]:
    """The ``conda-meta/*.json`` records of an image (pulled if missing; never started, so
    it needs no runtime, network or firewall)."""
    from spawner.docker import engine
    from spawner.docker.oneshot import one_shot

    body = {"Image": reference, "Cmd": ["true"], "Labels": {MANAGED: "true", ROLE: "sbom"}}
    try:
        api = engine.connect(timeout=120)
        try:
            engine.ensure_image(api, reference, lambda *_: None)
            with one_shot(api, body) as container:
                data = engine.read_archive(api, container, f"{ENV_PREFIX}/conda-meta")
        finally:
            api.close()
    except engine.EngineError as exc:
        raise LockstepError(
            f"cannot read {ENV_PREFIX}/conda-meta from {reference}: {exc}"
        ) from None
    records = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith(".json"):
                records.append(json.loads(tar.extractfile(member).read()))
    return records


def packages_from_meta(records: list[dict], platform: str) -> list[LockedPackage]:
    return [LockedPackage.from_conda_meta(r, platform) for r in records if r.get("name")]


# -- targets --------------------------------------------------------------------------------


def find_lock(settings, lock_hash: str) -> Path | None:
    """The ``conda-lock.yml`` under ``environments_dir`` whose hash is ``lock_hash``."""
    from spawner.image.build import lock_hash as hash_of

    if not lock_hash:
        return None
    for path in sorted(Path(settings.environments_dir).expanduser().glob("*/conda-lock.yml")):
        if hash_of(path) == lock_hash:
            return path
    return None


def _from_lock(path: Path, platform: str) -> list[LockedPackage]:
    from spawner.lock.condalock import read_lockfile

    try:
        return sbom.packages_from_lock(read_lockfile(path), platform)
    except ValueError as exc:
        raise LockstepError(f"{path}: {exc}; pass one with --platform") from None


def _image_target(settings, reference: str, platform: str, given: str | None = None):
    from spawner.launch.stages import lock_hash_of

    lock_hash = lock_hash_of(settings, reference)
    lock = _given_lock(Path(given), reference, lock_hash) if given else None
    lock = lock or find_lock(settings, lock_hash)
    records: list[dict] = []
    if lock is not None:
        packages = _from_lock(lock, platform)
    else:
        records = image_conda_meta(reference)
        packages = packages_from_meta(records, platform)
    repository, digest = reference.split("@", 1)
    subject = sbom.Subject(
        name=repository,
        version=digest,
        kind="container",
        properties=(
            ("org.lockstep:lock-hash", lock_hash),
            ("org.lockstep:lockfile", str(lock) if lock else "image conda-meta"),
        ),
    )
    return packages, subject, records


def _given_lock(path: Path, reference: str, lock_hash: str) -> Path:
    """``--lock``: the lock file the image was built from (its hash is the image's label)."""
    path = path / "conda-lock.yml" if path.is_dir() else path
    if not path.is_file():
        raise LockstepError(
            f"--lock {path}: no such lock file; pass the conda-lock.yml {reference} was built from"
        )
    found = _hash(path)
    if found != lock_hash:
        raise LockstepError(
            f"--lock {path} is not the lock {reference} was built from: its hash is "
            f"{found}, the image's org.lockstep.lock-hash label is "
            f"{lock_hash or '(none)'}. Pass the conda-lock.yml that built this image, or "
            "leave --lock out to list the image's own conda-meta."
        )
    return path


def _meta_licenses(records: list[dict]) -> dict[str, str]:
    return {
        f"{r['name']}-{r['version']}-{r['build']}": str(r["license"])
        for r in records
        if r.get("license") and r.get("build")
    }


def _target(args, settings, target: str):
    """``(packages, subject, records)`` for TARGET: a lock file or folder, or an image
    (``records``: None for a lock, the image's conda-meta records when they were read)."""
    path = Path(target)
    if path.is_dir():
        path = path / "conda-lock.yml"
    given = getattr(args, "lock", None)
    if not args.stage and path.is_file():
        if given:
            raise LockstepError(
                f"--lock goes with an image (REPO@sha256:... or a project with --stage), and "
                f"{target} is a lock already; leave --lock out, or pass the image instead."
            )
        subject = sbom.Subject(
            name=path.resolve().parent.name,
            version=_hash(path),
            kind="application",
            properties=(("org.lockstep:lockfile", str(path)),),
        )
        return _from_lock(path, args.platform), subject, None
    if DIGEST_REF_RE.match(target):
        return _image_target(settings, target, args.platform, given)
    raise LockstepError(
        f"{target!r} is neither a lock file, a project folder nor an image pinned by "
        "digest; pass environments/<project>/conda-lock.yml, REPO@sha256:<64 hex>, or "
        "a project name with --stage STAGE"
    )


def run(args, settings) -> int:
    target = args.target
    if args.stage:
        from spawner.docker.jobs import stage_image

        target = stage_image(settings, target, args.stage).reference
    packages, subject, records = _target(args, settings, target)
    licenses = cached_licenses(packages, settings.cache_path("pkgs"))
    conda = {p.stem for p in packages if p.manager == "conda"}
    if records is not None and not records and conda - set(licenses):
        try:  # the cache lacks some: the image's own records have them
            records = image_conda_meta(target)
        except LockstepError as exc:
            print(f"lockstep sbom: licenses from the image unavailable: {exc}", file=sys.stderr)
    licenses = {**_meta_licenses(records or []), **licenses}
    built = _built(dict(subject.properties), subject.version, args.platform)
    if subject.kind == "container" and _unbuilt(packages, built):
        built = {**_image_built(settings, target, args.platform), **built}
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if args.timestamp else None
    bom = sbom.build_sbom(
        packages=packages,
        subject=subject,
        channels=settings.channel_urls,
        licenses=licenses,
        tool_version=_tool_version(),
        timestamp=stamp,
        built=built,
    )
    text = sbom.dumps(bom)
    if args.output:
        Path(args.output).write_text(text)
        print(
            f"lockstep sbom: {len(bom['components'])} components, "
            f"{sum(1 for c in bom['components'] if 'licenses' in c)} with a license -> "
            f"{args.output}",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
    return 0


def _built(properties: dict, version: str, platform: str) -> dict:
    """The sdists built into wheels (by sdist sha256), from the build record beside the
    lock the bill is of, when that record is of the same lock (``recorded_builds``)."""
    from spawner.image.build import RECORD
    from spawner.image.buildrecords import recorded_builds

    lockfile = properties.get("org.lockstep:lockfile", "")
    if not lockfile.endswith(".yml"):
        return {}
    lock_hash = properties.get("org.lockstep:lock-hash", version)
    return recorded_builds(Path(lockfile).parent / RECORD, lock_hash, platform)


def _unbuilt(packages: Iterable[LockedPackage], built: dict) -> bool:
    """True when a locked pip sdist has no built-wheel facts yet."""
    from spawner.lock.pipwheels import locked_sdist

    return any(locked_sdist(p) and p.sha256 not in built for p in packages)


def _image_built(settings, reference: str, platform: str) -> dict:
    """The built wheels the image itself records (``LOCKSTEP_BUILT.json`` in each built
    sdist's dist-info), read from its registry; ``{}`` with a note when it cannot be read."""
    from spawner.image.buildrecords import image_builds
    from spawner.image.reader import read_image

    try:
        contents = read_image(settings, reference, hash_files=False)
    except (LockstepError, OSError) as exc:
        print(
            f"lockstep sbom: built-wheel facts from the image unavailable: {exc}", file=sys.stderr
        )
        return {}
    return image_builds([contents.built[k] for k in sorted(contents.built)], platform)


def _tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lockstep")
    except PackageNotFoundError:
        return ""


def _hash(path: Path) -> str:
    from spawner.image.build import lock_hash

    return lock_hash(path)
