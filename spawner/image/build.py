"""``lockstep build``: a project's lock -> an OCI image in the registry, without a daemon.

Steps: make sure the base image is in the registry; if the registry already holds the
image this lock and base give (looked up by the digest recorded for them), push nothing;
else install the lock for /opt/env into a staging folder, compile bytecode, write one
deterministic layer per package group (``grouping``: site-wide order, content-defined
groups, at most ``layer_limit``) plus a final layer with the normalised ``conda-meta`` and
the Jupyter hook (``jupyterhook``: saved notebooks record project, stage, digest and lock
hash), build config and manifest; push what the registry lacks (HEAD, cross-repository
mount, upload; layers go up as they are written), PUT the manifest by digest, tag it with
the first stage, and write a build record beside the lock.
A lock holding linux-64 and linux-aarch64 gives one image per platform (each on its own
platform's base, installed from that platform's packages) and one OCI image index naming
both (``index``); the index digest is the build's reference and stage tag.

Guarantees: a lock with an unsafe field or a package from a channel the site does not
allow, or a build host without the build sandbox, is refused before anything is fetched
or written; package code (bytecode compilation) runs only in the build sandbox; the same
lock and base give the same manifest digest, whatever the staging folder; a package gives
the same layer digest in every project; the staging folder is removed afterwards; nothing
is written to the project folder but ``build-record.json``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from spawner.errors import LockstepError
from spawner.image import buildrecords as records
from spawner.image import oci, push
from spawner.image.assemble import (  # noqa: F401  (lock_hash: imported from here too)
    FORMAT,
    assemble,
    image_key,
    lab_versions,
    layer_roots,
    lock_hash,
)
from spawner.image.base import ARCHITECTURES, BaseImage, ensure_base, external_base
from spawner.image.index import PlatformManifest, host_platforms, image_index
from spawner.image.pipeline import LayerOptions, staged_layers
from spawner.image.registry import RegistryClient
from spawner.image.sandbox import require_sandbox
from spawner.image.staging import (
    Installer,
    check_server,
    default_installer,
    new_staging_dir,
    remove_later,
)
from spawner.image.tarlayer import BlobCache, LayerBlob
from spawner.lock.condalock import read_lockfile
from spawner.lock.cuda import lock_requirement
from spawner.lock.pipinstall import refuse_locked_sdists
from spawner.lock.policy import ChannelPolicy
from spawner.progress import human_bytes
from spawner.project import load_project

RECORD = "build-record.json"
LOCKFILE = "conda-lock.yml"


@dataclass(frozen=True)
class BuildResult:
    """What a build produced; ``to_json`` is what ``lockstep build --json`` prints."""

    project: str
    reference: str  # REPO@sha256:...
    digest: str
    lock_hash: str
    base: str
    layers: int
    bytes_uploaded: int
    size: int  # compressed bytes of all layers and config
    noop: bool
    tag: str
    layer_digests: tuple[str, ...] = ()
    cuda: str = ""
    """The CUDA minimum the lock states (``lockstep.cuda``; the image's ``CUDA`` label)."""
    platforms: tuple[str, ...] = ("linux-64",)
    """The image platforms; several: ``digest`` is an OCI image index naming one each."""

    def to_json(self) -> dict:
        skip = ("layer_digests", "platforms")
        return {k: v for k, v in asdict(self).items() if k not in skip} | {
            "layer_digests": list(self.layer_digests), "platforms": list(self.platforms)
        }


@dataclass
class PlatformImage:
    """One platform's image of a build: its layers, config and manifest."""

    platform: str
    base: BaseImage
    blobs: list[LayerBlob]
    config: bytes
    manifest: bytes

    @property
    def digest(self) -> str:
        return oci.sha256_digest(self.manifest)


class Builder:
    """One build of one project; ``run()`` returns a ``BuildResult``."""

    def __init__(
        self,
        project_dir: Path,
        settings,
        *,
        registry: str | None = None,
        installer: Installer | None = None,
        progress: Callable[[str], None] | None = None,
        epoch: int = 0,
        workers: int | None = None,
    ) -> None:
        self.project_dir = Path(project_dir)
        self.settings = settings
        self.registry = registry or settings.registry
        self.progress = progress or (lambda msg: None)
        self.installer = installer or default_installer(settings, self.progress)
        self.epoch = epoch
        self.workers = workers or max(2, os.cpu_count() or 2)
        self.name = self.project_dir.name
        self.repo = oci.repository_for(self.registry, self.name)
        self.tag = settings.stages[0]
        self.cuda, self.lab = "", {}  # the lock's CUDA and JupyterLab (``_lockfile``)
        self.platforms: tuple[str, ...] = ("linux-64",)  # the lock's, set by ``_lockfile``
        self.client = RegistryClient.for_host(self.repo.host,
                                              insecure_registries=settings.insecure_registries)
        self.early: push.EarlyPush | None = None  # layer uploads begun as each is written
        self.built: list[dict] = []  # sdists built into wheels (``records.built_wheels``)

    def run(self) -> BuildResult:
        try:
            return self._run()
        finally:
            self.early and self.early.close()
            self.client.close()

    def _run(self) -> BuildResult:
        lockfile = self._lockfile()
        lhash = lock_hash(lockfile)
        bases = {p: self._base(p) for p in self.platforms}
        key = image_key(
            lock_hash=lhash,
            base_digest=",".join(b.digest for b in bases.values()),
            layer_limit=self.settings.layer_limit,
            roots=layer_roots(self.settings),
            epoch=self.epoch,
            test_bytecode=self.settings.compile_test_bytecode,
            jupyterlab=self.lab,
        )
        known = self._known(key)
        if known and self.client.head_manifest(self.repo.repository, known["digest"]):
            self.progress(f"{self.repo.name}@{known['digest']} is already in the registry")
            self._tag(known["digest"])
            return self._finish(key, BuildResult(**{**known, "bytes_uploaded": 0, "noop": True}))
        images = self._images(lockfile, lhash, bases)
        pushed = [self._push_image(image) for image in images]
        uploaded = sum(sent for sent in pushed if sent is not None)
        digest, manifest, media_type = self._top(images)
        if len(images) > 1 and not self.client.head_manifest(self.repo.repository, digest):
            self.client.put_manifest(self.repo.repository, digest, manifest, media_type)
        self._tag(digest, manifest, media_type)
        layer_digests = dict.fromkeys(
            d for i in images for d in (*(x.digest for x in i.base.layers),
                                        *(b.digest for b in i.blobs))
        )
        return self._finish(
            key,
            BuildResult(
                project=self.name,
                reference=str(self.repo.by_digest(digest)),
                digest=digest,
                lock_hash=lhash,
                base=images[0].base.reference,
                layers=len(images[0].base.layers) + len(images[0].blobs),
                bytes_uploaded=uploaded,
                size=sum(sum(b.size for b in i.blobs) + len(i.config)
                         + sum(d.size for d in i.base.layers) for i in images),
                noop=all(sent is None for sent in pushed),
                tag=self.tag,
                layer_digests=tuple(layer_digests),
                cuda=self.cuda,
                platforms=tuple(self.platforms),
            ),
        )

    def _images(self, lockfile: Path, lhash: str, bases: dict) -> list[PlatformImage]:
        """Install, compile and write layers for each platform (linux-64 first: its python
        compiles a foreign platform's bytecode, ``index.compile_plan``)."""
        stagings: dict[str, Path] = {}
        images = []
        try:
            for platform, base in bases.items():
                stagings[platform] = new_staging_dir(self.settings.cache_path())
                blobs, history = self._layers(lockfile, stagings[platform], base, platform,
                                              host=stagings.get("linux-64"))
                config, manifest = assemble(
                    layers=blobs, history=history, base=base, project=self.name,
                    lock_hash=lhash, epoch=self.epoch, runtime=self.runtime(lhash, base, platform),
                    architecture=ARCHITECTURES[platform],
                )
                images.append(PlatformImage(platform, base, blobs, config, manifest))
        finally:
            for staging in stagings.values():
                remove_later(staging)
        return images

    def _push_image(self, image: PlatformImage) -> int | None:
        """Push one platform's image; bytes uploaded, None when the registry had it."""
        if self.client.head_manifest(self.repo.repository, image.digest):
            self.progress(f"{self.repo.name}@{image.digest} ({image.platform}) is already "
                          "in the registry")
            return None
        return self._push(image.base, image.blobs, image.config, image.manifest, image.digest)

    @staticmethod
    def _top(images: list[PlatformImage]) -> tuple[str, bytes, str]:
        """(digest, bytes, media type) the build names: the one manifest, or the index."""
        if len(images) == 1:
            return images[0].digest, images[0].manifest, oci.MEDIA_MANIFEST
        index = image_index(
            [PlatformManifest(i.platform, i.digest, len(i.manifest)) for i in images]
        )
        return oci.sha256_digest(index), index, oci.MEDIA_INDEX

    def runtime(self, lock_hash: str, base: BaseImage, platform: str) -> oci.RuntimeSpec:
        """What ``platform``'s image runs (``oci.project_runtime``: the lock's CUDA, Lab)."""
        return oci.project_runtime(project=self.name, lock_hash=lock_hash, base=base.digest,
                                   cuda=self.cuda, jupyterlab=self.lab.get(platform, ""))

    # -- steps ----------------------------------------------------------------------------
    def _lockfile(self) -> Path:
        """The lock, checked before anything is fetched or written: project.yaml, every
        lock field (``policy.check_lock_fields``), every package's channel against the
        site's ``ChannelPolicy``, and that the build sandbox can run."""
        if (self.project_dir / "project.yaml").is_file():
            load_project(self.project_dir)
        lockfile = self.project_dir / LOCKFILE
        if not lockfile.is_file():
            raise LockstepError(
                f"{lockfile} does not exist; create it with `lockstep lock {self.project_dir}`"
            )
        model = read_lockfile(lockfile)
        self.cuda, self.lab = lock_requirement(model), lab_versions(model.package)
        self._check_platforms(tuple(model.metadata.platforms), lockfile)
        ChannelPolicy.from_settings(self.settings).check_packages(
            model.package, source=str(lockfile)
        )
        if not self.settings.pip_allow_sdists:
            refuse_locked_sdists(model.package, str(lockfile))
        require_sandbox(self.settings.build_sandbox)
        return lockfile

    def _check_platforms(self, platforms: tuple[str, ...], lockfile: Path) -> None:
        """Builds the lock's Linux images (``index``); laptops' platforms are skipped."""
        self.platforms = linux = host_platforms(platforms, str(lockfile))
        if others := [p for p in platforms if p not in linux]:
            self.progress(f"building images for {', '.join(linux)}; not for {', '.join(others)}")

    def _base(self, platform: str = "linux-64") -> BaseImage:
        if self.settings.base_image:
            if platform != "linux-64":
                raise LockstepError(
                    f"c.Lockstep.base_image is a linux-64 image, and the lock also holds "
                    f"{platform}; drop {platform} from platforms: or unset base_image"
                )
            ref = oci.parse_reference(self.settings.base_image)
            if ref.host != self.repo.host:
                raise LockstepError(
                    f"c.Lockstep.base_image {ref} is on another registry than {self.registry}; "
                    "copy it there first (the build mounts base layers, it does not download them)"
                )
            return external_base(self.client, self.settings.base_image)
        return ensure_base(
            self.client,
            self.registry,
            self.settings.cache_path("base"),
            epoch=self.epoch,
            progress=self.progress,
            platform=platform,
        )

    def _known(self, key: str) -> dict | None:
        return records.known(self.settings, self.project_dir / RECORD, self.repo.name, key,
                             fields=tuple(BuildResult.__dataclass_fields__))

    def _layers(
        self, lockfile: Path, staging: Path, base: BaseImage, platform: str = "linux-64",
        host: Path | None = None,
    ) -> tuple[list[LayerBlob], list[str]]:
        self.progress(f"installing {lockfile} ({platform}) for /opt/env")
        if platform == "linux-64":
            self.installer(lockfile, staging)
        else:
            self.installer(lockfile, staging, platform=platform)
        check_server(staging, project=self.name)
        self.built += records.built_wheels(staging, platform)
        options = LayerOptions(
            slots=self.settings.layer_limit - len(base.layers) - 1,
            roots=layer_roots(self.settings),
            pyc_cache=self.settings.cache_path("pyc"),
            sandbox=self.settings.build_sandbox,
            tests=self.settings.compile_test_bytecode,
            mtime=self.epoch,
            workers=self.workers,
        )
        if self.early is None:
            self.early = push.EarlyPush(
                self.client, self.repo, push.sibling_repos(self.project_dir, self.repo, RECORD)
            )
        blobs, history = staged_layers(
            staging, options, BlobCache(self.settings.cache_path("layers")), platform=platform,
            host=host, progress=self.progress, done=self.early.add,
        )
        self.progress(f"wrote {len(blobs)} layers ({human_bytes(sum(b.size for b in blobs))})")
        return blobs, history

    def _push(
        self, base: BaseImage, blobs: list[LayerBlob], config: bytes, manifest: bytes, digest: str
    ) -> int:
        return push.push_image(
            self.client, self.repo, base=base, blobs=blobs, config=config, manifest=manifest,
            digest=digest, siblings=push.sibling_repos(self.project_dir, self.repo, RECORD),
            progress=self.progress, early=self.early)

    def _tag(self, digest: str, manifest: bytes | None = None,
             media_type: str = oci.MEDIA_MANIFEST) -> None:
        push.tag(self.client, self.repo, self.tag, digest, manifest, media_type)

    def _finish(self, key: str, result: BuildResult) -> BuildResult:
        records.write(self.settings, self.project_dir / RECORD, key,
                      {"format": FORMAT, **result.to_json()}, built=self.built)
        return result


def build_image(
    project_dir: Path,
    settings,
    *,
    registry: str | None = None,
    installer: Installer | None = None,
    progress: Callable[[str], None] | None = None,
    epoch: int = 0,
) -> BuildResult:
    """Build ``project_dir``'s lock into an image in ``registry`` (default: the site's).

    Parameters
    ----------
    project_dir : ``environments/<project>`` holding ``conda-lock.yml`` (and ``project.yaml``).
    settings : the site's ``Lockstep`` settings (registry, caches, stages, layer_limit...).
    registry : ``HOST[:PORT][/NAMESPACE]`` overriding ``settings.registry``.
    installer : ``installer(lockfile, staging)``; default: the lock module's ``install_lock``.
    progress : called with one line of text per step.
    epoch : ``SOURCE_DATE_EPOCH`` for the config's ``created`` and layer mtimes.
    """
    return Builder(
        project_dir,
        settings,
        registry=registry,
        installer=installer,
        progress=progress,
        epoch=epoch,
    ).run()
