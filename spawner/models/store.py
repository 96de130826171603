"""Models in the registry and in the local cache: push, list, pin, resolve, pull.

A model lives in the project's repository of the first stage (``stage_repository``), by
digest, tagged ``model-sha256-<hex>`` so ``list`` can find it (tags are the only thing a
registry lists); a stage's model is the ``model-<stage>`` tag (``pairs.model_tag``), moved
by promotion together with the stage tag (``spawner.promote.core``). ``pull`` copies a
model into ``<data_dir>/models/sha256-<hex>/``: each file's bytes are checked against its
layer digest before the folder appears (written aside, then renamed), files are read-only,
and a folder that exists is used as it is (content-addressed: the name is the content).

Guarantees: every registry call goes through ``spawner.image.registry`` (timeouts,
credentials); an unknown digest is a ``ModelError`` naming it and the repository (exit 2);
nothing here moves a stage's image. Local files pushed are regular files only (no
symlinks), under ``max_bytes`` in all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from spawner.image.oci import DIGEST_RE, MEDIA_MANIFEST
from spawner.image.registry import RegistryClient
from spawner.launch.stages import split_repository, stage_repository
from spawner.models.artifact import EMPTY_CONFIG, Model, ModelError, ModelFile, build_model
from spawner.models.artifact import read_manifest as parse_model
from spawner.models.pairs import MODEL_TAG_PREFIX, model_tag
from spawner.promote.pointers import Endpoint, StageLock, move_pointer, read_pointer

MAX_BYTES = 4 << 30  # 4 GiB in all, unless --max-bytes says otherwise
KEEP_TAG = MODEL_TAG_PREFIX + "sha256-"


@dataclass(frozen=True)
class LocalFile:
    file: ModelFile
    source: Path


def _digest_file(path: Path) -> tuple[str, int]:
    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return "sha256:" + sha.hexdigest(), size


def _walk(root: Path) -> list[tuple[str, Path]]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if Path(dirpath, d).is_symlink()]:
            path = Path(dirpath) / name
            found.append((path.relative_to(root).as_posix(), path))
    return found


def collect(paths: list[str], *, max_bytes: int = MAX_BYTES) -> list[LocalFile]:
    """The files to push: a file is named by its base name, a folder's files by their path
    under it. Refuses what is missing, not a regular file, or over ``max_bytes`` in all."""
    entries: list[tuple[str, Path]] = []
    for given in paths:
        path = Path(given)
        if path.is_symlink() or not path.exists():
            raise ModelError(f"{given} is missing or a symbolic link; give regular files "
                             "or folders")
        entries += _walk(path) if path.is_dir() else [(path.name, path)]
    out, total = [], 0
    for name, path in entries:
        if path.is_symlink() or not path.is_file():
            raise ModelError(f"{path} is not a regular file (a symbolic link or a device); "
                             "models hold regular files only: copy the target in instead")
        digest, size = _digest_file(path)
        total += size
        if total > max_bytes:
            raise ModelError(f"the model files are over {max_bytes} bytes in all (at {path}); "
                             "push fewer files, or raise the limit with --max-bytes")
        out.append(LocalFile(ModelFile(name, digest, size), path))
    return out


@contextmanager
def endpoint(settings, project: str, stage: str | None = None):
    """An ``Endpoint`` for ``stage``'s repository (default: the first stage's)."""
    host, name = split_repository(stage_repository(settings, project,
                                                   stage or settings.stages[0]))
    client = RegistryClient.for_host(host, insecure_registries=tuple(
        settings.insecure_registries), auth_file=getattr(settings, "registry_auth_file", ""))
    with client:
        yield Endpoint(client, name)


def push(settings, project: str, files: list[LocalFile]) -> tuple[str, Model]:
    """Push ``files`` as a model; (``REPO@sha256:...``, the model)."""
    model = build_model(f.file for f in files)
    with endpoint(settings, project) as ep:
        ep.client.ensure_blob(ep.repository, _empty_digest(), EMPTY_CONFIG)
        for local in files:
            ep.client.ensure_blob(ep.repository, local.file.digest, local.source)
        ep.client.put_manifest(ep.repository, model.digest, model.manifest, MEDIA_MANIFEST)
        ep.client.put_manifest(ep.repository, KEEP_TAG + model.digest.split(":")[1],
                               model.manifest, MEDIA_MANIFEST)
        return f"{ep.name}@{model.digest}", model


def _empty_digest() -> str:
    return "sha256:" + hashlib.sha256(EMPTY_CONFIG).hexdigest()


def fetch(ep: Endpoint, digest: str) -> Model:
    """The model ``digest`` in ``ep``; a ``ModelError`` naming it when it is not there."""
    if not DIGEST_RE.match(digest or ""):
        raise ModelError(f"{digest!r} is not a model digest; give sha256:<64 hex digits> as "
                         "`lockstep model push` or `lockstep model list` prints it")
    if ep.client.head_manifest(ep.repository, digest) is None:
        raise ModelError(f"model {digest} is not in {ep.name}; `lockstep model list "
                         f"{ep.repository.rsplit('/', 1)[-1]}` shows the models there, "
                         "`lockstep model push` adds one")
    data, _, found = ep.client.get_manifest(ep.repository, digest)
    if found != digest:
        raise ModelError(f"{ep.name}@{digest} returned a manifest of digest {found}")
    return parse_model(data, name=f"{ep.name}@{digest}")


def stage_model(ep: Endpoint, stage: str) -> str | None:
    """The model digest ``stage`` holds (its ``model-<stage>`` tag), or None."""
    return read_pointer(ep, model_tag(stage))


def pin(settings, project: str, digest: str) -> tuple[str | None, str]:
    """Point the first stage's model tag at ``digest`` (compare-and-swap, under the stage
    lock); (the model before, the first stage)."""
    first = settings.stages[0]
    with endpoint(settings, project, first) as ep:
        fetch(ep, digest)
        with StageLock(settings.data_path("locks"), project, first):
            before = stage_model(ep, first)
            if before != digest:
                move_pointer(source=ep, target=ep, stage=model_tag(first), digest=digest,
                             expected=before)
    return before, first


def list_models(settings, project: str) -> list[dict]:
    """Each model of ``project``: digest, files, bytes, the stages holding it, repository."""
    rows: dict[str, dict] = {}
    for stage in settings.stages:
        with endpoint(settings, project, stage) as ep:
            tags = ep.client.list_tags(ep.repository)
            held = stage_model(ep, stage) if model_tag(stage) in tags else None
            for tag in tags:
                if tag.startswith(KEEP_TAG) or tag == model_tag(stage):
                    digest = "sha256:" + tag[len(KEEP_TAG):] if tag.startswith(KEEP_TAG) \
                        else held
                    if digest and digest not in rows:
                        model = fetch(ep, digest)
                        rows[digest] = {"digest": digest, "files": len(model.files),
                                        "bytes": model.size, "stages": [],
                                        "repository": ep.name}
            if held:
                rows[held]["stages"].append(stage)
    return sorted(rows.values(), key=lambda r: (not r["stages"], r["digest"]))


def cache_dir(settings, digest: str) -> Path:
    return settings.data_path("models", digest.replace(":", "-"))


def pull(settings, ep: Endpoint, digest: str) -> Path:
    """The folder holding model ``digest``'s files (pulled once, checked, read-only)."""
    final = cache_dir(settings, digest)
    if final.is_dir():
        return final
    model = fetch(ep, digest)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".pull-", dir=final.parent))
    try:
        for f in model.files:
            dest = work.joinpath(*f.path.split("/"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            ep.client.download_blob(ep.repository, f.digest, dest)
            if _digest_file(dest) != (f.digest, f.size):
                raise ModelError(f"{ep.name}@{digest}: file {f.path} does not match its "
                                 f"digest {f.digest}; the registry holds other bytes")
            dest.chmod(0o444)
        for folder, _dirs, _files in os.walk(work):
            os.chmod(folder, 0o555)
        try:
            os.rename(work, final)
        except OSError:
            if not final.is_dir():  # else another pull of the same digest won the rename
                raise
            raise FileExistsError(final) from None
    except FileExistsError:
        _remove(work)
        return final
    except BaseException:
        _remove(work)
        raise
    return final


def _remove(work: Path) -> None:
    for folder, _dirs, _files in os.walk(work):
        os.chmod(folder, 0o755)
    shutil.rmtree(work, ignore_errors=True)


def serve(settings, project: str, stage: str) -> tuple[str, Path] | None:
    """(model digest, local read-only folder) of the model ``stage`` holds, pulled into the
    cache; None when the stage holds no model."""
    with endpoint(settings, project, stage) as ep:
        digest = stage_model(ep, stage)
        return (digest, pull(settings, ep, digest)) if digest else None
