"""Model files as an OCI artifact: a pure, deterministic manifest builder and reader.

A model is an OCI 1.1 image manifest with ``artifactType``
``application/vnd.lockstep.model.v1``, the empty config descriptor, and one layer per file
(sorted by path), each layer's ``org.opencontainers.image.title`` annotation holding the
file's path inside the model (as ORAS names files). The manifest is serialised canonically
(``spawner.image.oci.canonical_json``): the same files, with the same paths and bytes,
always give the same digest; no time, host or user goes in.

Guarantees: a model path is relative, POSIX, without ``.``/``..`` parts, empty parts,
backslashes or control characters, at most ``MAX_PATH`` characters, and unique in a model
(``check_path``); ``read_manifest`` applies the same checks to a manifest that came from a
registry, so a pulled model can never write outside its folder. Nothing here does I/O: the
registry side is ``spawner.models.store``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from spawner.errors import LockstepError
from spawner.image.oci import DIGEST_RE, MEDIA_MANIFEST, canonical_json, sha256_digest

ARTIFACT_TYPE = "application/vnd.lockstep.model.v1"
MEDIA_FILE = "application/vnd.lockstep.model.file.v1"
MEDIA_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_CONFIG = b"{}"
TITLE = "org.opencontainers.image.title"
MAX_PATH = 255
MAX_FILES = 10_000
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


class ModelError(LockstepError):
    """Model files or a model manifest that lockstep refuses (the message names why)."""


@dataclass(frozen=True)
class ModelFile:
    """One file of a model: its path in the model, its content digest and size."""

    path: str
    digest: str
    size: int


@dataclass(frozen=True)
class Model:
    """A built (or read) model artifact: its manifest bytes, digest and files."""

    manifest: bytes
    digest: str
    files: tuple[ModelFile, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def check_path(path: str) -> str:
    """``path`` if it is an allowed model path, else ``ModelError`` naming the rule."""
    rules = "a model path is relative, uses '/', and has no '.', '..' or empty parts"
    if not path or len(path) > MAX_PATH:
        raise ModelError(f"model path {path!r} must have 1 to {MAX_PATH} characters")
    if _BAD_CHARS.search(path):
        raise ModelError(f"model path {path!r} has a backslash or control character; {rules}")
    if path.startswith("/"):
        raise ModelError(f"model path {path!r} is absolute; {rules}")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ModelError(f"model path {path!r} is not allowed; {rules}")
    return path


def empty_config() -> dict:
    return {"mediaType": MEDIA_EMPTY, "digest": sha256_digest(EMPTY_CONFIG),
            "size": len(EMPTY_CONFIG), "data": "e30="}


def build_model(files: Iterable[ModelFile]) -> Model:
    """The model artifact of ``files`` (any order; see the module docstring)."""
    ordered = tuple(sorted(files, key=lambda f: f.path))
    if not ordered:
        raise ModelError("a model needs at least one file; give the files or folders to push")
    if len(ordered) > MAX_FILES:
        raise ModelError(f"a model holds at most {MAX_FILES} files, got {len(ordered)}")
    seen: set[str] = set()
    for f in ordered:
        check_path(f.path)
        if f.path in seen:
            raise ModelError(f"model path {f.path!r} is given twice; each path once")
        seen.add(f.path)
        if not DIGEST_RE.match(f.digest) or f.size < 0:
            raise ModelError(f"model file {f.path!r} has no valid sha256 digest and size")
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": empty_config(),
        "layers": [{"mediaType": MEDIA_FILE, "digest": f.digest, "size": f.size,
                    "annotations": {TITLE: f.path}} for f in ordered],
    }
    data = canonical_json(manifest)
    return Model(data, sha256_digest(data), ordered)


def read_manifest(data: bytes, *, name: str = "model") -> Model:
    """The model in manifest ``data`` (from a registry); ``ModelError`` when it is not a
    lockstep model or names a path that is not allowed."""
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ModelError(f"{name} is not a JSON manifest") from None
    if not isinstance(manifest, dict) or manifest.get("artifactType") != ARTIFACT_TYPE:
        kind = manifest.get("artifactType") if isinstance(manifest, dict) else None
        raise ModelError(f"{name} is not a lockstep model (artifactType {kind!r}, expected "
                         f"{ARTIFACT_TYPE!r}); push models with `lockstep model push`")
    files = []
    for layer in manifest.get("layers") or []:
        path = (layer.get("annotations") or {}).get(TITLE, "")
        files.append(ModelFile(check_path(path), str(layer.get("digest", "")),
                               int(layer.get("size", -1))))
    model = build_model(files)
    return Model(bytes(data), sha256_digest(bytes(data)), model.files)


def short(digest: str | None) -> str:
    """``sha256:0123456789ab`` (19 characters) for people; '-' for none."""
    return digest[:19] if digest else "-"
