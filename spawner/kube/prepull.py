"""Pre-pull what the stages hold: stage pointers -> Zero to JupyterHub ``prePuller`` values.

Data-science images are large; a user whose node has never pulled the stage's digest waits
for it. z2jh's continuous pre-puller (a DaemonSet on every user node) and its upgrade hook
pull ``prePuller.extraImages``; :func:`z2jh_values` turns the digests the stage pointers
hold into exactly that block, so ``helm upgrade -f prepull.yaml`` after a promotion puts the
new digest on every node (the hook pulls it before the upgrade completes).

Guarantees: pure and deterministic (same pointers, same values, sorted keys); every image is
pinned by digest (z2jh renders ``name:tag``, so the digest is written as name
``<repo>@sha256`` and tag ``<hex>``); entry names are valid container-name suffixes. For the
standalone chart (no z2jh), :func:`daemonset` renders the equivalent DaemonSet itself, its
pods non-root with no capabilities. It must not read the registry: ``lockstep prepull``
(``spawner.commands.prepull``) resolves the pointers and writes what these return.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from spawner.launch.spec import ImageRef

PREFIX = "lockstep-"
MAX_KEY = 63 - len("image-pull-")  # z2jh names each init container image-pull-<key>


def entry_key(project: str, stage: str) -> str:
    """``lockstep-<project>-<stage>``, lower-case, a valid DNS label once prefixed."""
    key = re.sub(r"[^a-z0-9-]+", "-", f"{PREFIX}{project}-{stage}".lower()).strip("-")
    if len(key) > MAX_KEY:
        raise ValueError(f"pre-pull entry {key!r} is longer than {MAX_KEY} characters; "
                         f"shorten the project or stage name")
    return key


def extra_images(pointers: Mapping[str, Mapping[str, ImageRef]]) -> dict[str, dict[str, str]]:
    """project -> stage -> image  =>  z2jh ``prePuller.extraImages`` entries."""
    out: dict[str, dict[str, str]] = {}
    for project in sorted(pointers):
        for stage in sorted(pointers[project]):
            image = pointers[project][stage]
            algorithm, hex_digest = image.digest.split(":", 1)
            out[entry_key(project, stage)] = {"name": f"{image.repository}@{algorithm}",
                                              "tag": hex_digest}
    return out


def z2jh_values(pointers: Mapping[str, Mapping[str, ImageRef]]) -> dict:
    """The values file to pass after the overlay: ``{"prePuller": {"extraImages": ...}}``."""
    return {"prePuller": {"extraImages": extra_images(pointers)}}


PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
"""What the pre-puller's one long-running container runs (z2jh runs the same image)."""


def _puller(key: str, image: ImageRef) -> dict:
    """An init container that only makes the kubelet pull ``image`` and exits at once."""
    return {
        "name": f"image-pull-{key}",
        "image": image.reference,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", "echo Pulling complete"],
        "resources": {"limits": {"cpu": "100m", "memory": "64Mi"},
                      "requests": {"cpu": "0", "memory": "0"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 100,
        },
    }


def daemonset(
    pointers: Mapping[str, Mapping[str, ImageRef]],
    *,
    namespace: str,
    name: str = "lockstep-image-puller",
    pause_image: str = PAUSE_IMAGE,
    pull_secrets: tuple[str, ...] = (),
    node_selector: Mapping[str, str] | None = None,
) -> dict:
    """A DaemonSet (for the standalone chart) pulling every stage digest on every node.

    Each digest is an init container (``image-pull-<entry key>``) that exits at once; the
    kubelet keeps what it pulled. Re-apply it after a promotion (``lockstep prepull
    --format daemonset | kubectl apply -f -``) and the rollout pulls the new digest.
    """
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "lockstep"}
    inits = [_puller(entry_key(project, stage), pointers[project][stage])
             for project in sorted(pointers) for stage in sorted(pointers[project])]
    pod: dict = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 0,
        "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": inits,
        "containers": [{
            "name": "pause",
            "image": pause_image,
            "resources": {"limits": {"cpu": "50m", "memory": "32Mi"},
                          "requests": {"cpu": "0", "memory": "0"}},
            "securityContext": {"allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                                "readOnlyRootFilesystem": True},
        }],
    }
    if pull_secrets:
        pod["imagePullSecrets"] = [{"name": s} for s in sorted(pull_secrets)]
    if node_selector:
        pod["nodeSelector"] = dict(sorted(node_selector.items()))
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": "100%"}},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
