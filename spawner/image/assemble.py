"""The image a build's inputs give, pure: lock hash, image key, layer texts, config and manifest.

``spawner.image.build`` installs, compiles and writes layers (I/O); what those bytes become
is decided here: the lock's hash (the image's lock-hash label), the key that names a
build's inputs (lock, base, layer rule, epoch), the layer list with its history text, and
the canonical config and manifest. No I/O apart from reading the lock file's bytes in
``lock_hash``; the same inputs always give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from spawner.image import oci
from spawner.image.base import BaseImage
from spawner.image.envlayout import Layout
from spawner.image.grouping import RULE, LayerGroup, tier_roots
from spawner.image.jupyterhook import FINGERPRINT as HOOK
from spawner.image.tarlayer import Entry, LayerBlob, compression, with_parents

FORMAT = "lockstep-image-1"
LAB = "jupyterlab"
LABEL_RULE = "jupyterlab-label-1"  # the image carries labels.JUPYTERLAB (``lab_versions``)


def lock_hash(lockfile: Path) -> str:
    """The lock's hash: ``sha256:`` of the ``conda-lock.yml`` bytes (the image's lock-hash label).

    The one definition: verify, sbom and the stage resolver compare labels with it.
    """
    return "sha256:" + hashlib.sha256(Path(lockfile).read_bytes()).hexdigest()


def lab_versions(packages) -> dict[str, str]:
    """Platform -> the ``jupyterlab`` version a lock's packages (conda-lock's
    ``LockedDependency``) install there, conda's before pip's; a platform without it is
    absent. The image of that platform carries it as its ``labels.JUPYTERLAB``. Pure."""
    found: dict[str, str] = {}
    for package in sorted(packages, key=lambda p: p.manager != "conda"):
        if package.name.lower() == LAB and package.version:
            found.setdefault(str(package.platform), str(package.version))
    return found


def layer_roots(settings) -> tuple[str, ...]:
    """The site's ordered shared roots for the layer rule (``grouping.tier_roots``)."""
    return tier_roots(server_packages=settings.server_packages, layer_order=settings.layer_order)


def image_key(
    *,
    lock_hash: str,
    base_digest: str,
    layer_limit: int,
    roots,
    epoch: int,
    test_bytecode: bool = False,
    jupyterlab: Mapping[str, str] | None = None,
) -> str:
    """Everything that decides the image digest apart from the installed bytes: the
    lock, the base, the layer rule (``grouping.RULE``, the site's roots, the limit),
    lockstep's own files in the image (``jupyterhook.FINGERPRINT``), whether test
    suites get bytecode (``c.Lockstep.compile_test_bytecode``) and the JupyterLab label
    (``lab_versions``; only a lock with JupyterLab adds it, so the key of a lock without
    it, whose image has no such label, is the one it always was)."""
    lab = [[LABEL_RULE, sorted(jupyterlab.items())]] if jupyterlab else []
    text = json.dumps(
        [
            FORMAT,
            compression(),
            lock_hash,
            base_digest,
            RULE,
            list(roots),
            layer_limit,
            epoch,
            HOOK,
            "pyc-tests" if test_bytecode else "pyc-no-tests",
            *lab,
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()


def group_entries(layout: Layout, groups: list[LayerGroup]) -> list[tuple[str, list[Entry]]]:
    """(history text, entries) per layer, bottom first; the last holds conda-meta + extras."""
    layers = []
    for group in groups:
        entries = [e for name in group.packages for e in layout.owned[name]]
        pkgs = [layout.packages[n] for n in group.packages]
        text = ", ".join(f"{p.name}-{p.version}-{p.build}" for p in pkgs)
        layers.append((f"conda package {text}"[:400], with_parents(entries)))
    layers.append(("conda-meta (normalised)", with_parents(layout.meta + layout.extra)))
    return layers


def assemble(
    *,
    layers: list[LayerBlob],
    history: list[str],
    base: BaseImage,
    project: str,
    lock_hash: str,
    epoch: int,
    runtime: oci.RuntimeSpec | None = None,
    architecture: str = "amd64",
) -> tuple[bytes, bytes]:
    """(config bytes, manifest bytes) for the project image (pure); ``runtime`` defaults to
    ``oci.project_runtime`` (the hub image passes its own, ``spawner.image.hubimage``)."""
    runtime = runtime or oci.project_runtime(
        project=project, lock_hash=lock_hash, base=base.digest
    )
    config = oci.canonical_json(
        oci.image_config(
            runtime=runtime,
            diff_ids=[*base.diff_ids, *(b.diff_id for b in layers)],
            history=[*base.history, *history],
            created=oci.created_at(epoch),
            architecture=architecture,
        )
    )
    descriptors = [
        *base.layers,
        *(oci.Descriptor(oci.MEDIA_LAYER, b.digest, b.size) for b in layers),
    ]
    config_desc = oci.Descriptor(oci.MEDIA_CONFIG, oci.sha256_digest(config), len(config))
    return config, oci.canonical_json(oci.image_manifest(config=config_desc, layers=descriptors))
