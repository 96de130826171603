"""Every ``org.lockstep.*`` label and annotation key, defined once, with its meaning.

lockstep marks what it makes (images, containers, pods, volumes, networks, NetworkPolicies)
with labels under the ``org.lockstep`` prefix, and finds its objects again by them:
``lockstep audit`` lists containers by ``MANAGED``, the services deployer finds a
project's replicas by ``KIND`` and ``PROJECT``, NetworkPolicies select pods by ``MANAGED``
and ``PROJECT``, verify and the stage resolver read ``LOCK_HASH`` from an image config.
A key's text is a contract with what already runs (containers started by an earlier
release, images already in a registry, golden tests): a key here is never renamed.

Guarantees: each constant is the full key (``org.lockstep.project``), each key is defined
in this module only, and each has one meaning wherever it is used (see the docstring under
it). The CycloneDX property names ``org.lockstep:*`` (with a colon) are not labels: they
live in ``spawner.sbom``. The test label ``org.lockstep.test=1`` belongs to the test suite.
This module must not import anything from lockstep: everything imports it.
"""

from __future__ import annotations

PREFIX = "org.lockstep"
"""The prefix every lockstep label key starts with (``<PREFIX>.<name>``)."""

# -- image labels (in an image's config, set by the image builder) ---------------------------

LOCK_HASH = f"{PREFIX}.lock-hash"
"""The hash of the ``conda-lock.yml`` the image (or the container's image) was built from.

On an image config and on every server, job and service container/pod. Verify and the
stage resolver read it to tie an image to its lock."""

BASE = f"{PREFIX}.base"
"""On a project or hub image: the digest (``sha256:...``) of the base image it was built
on. The digest only, not where the base is stored: the same lock and base give the same
image digest in any registry (a mirror's, another site's)."""

BASE_KEY = f"{PREFIX}.base-key"
"""On a base image: its cache key (sha256 of the base definition's inputs), which names it."""

CUDA = f"{PREFIX}.cuda"
"""On a project image whose lock states one: the CUDA its GPU code needs from the driver, a
minimum (``>=12.0``, ``spawner.cuda``). Absent when the project states none."""

JUPYTERLAB = f"{PREFIX}.jupyterlab"
"""On a project image whose lock installs JupyterLab for the image's platform: the locked
``jupyterlab`` version (``4.2.5``). Absent when the lock has none. The spawners and the
service's reopen read it to give a server Lab on the workspace (``launch.landing``), also
for an image of an older lock than the project's current one."""

# -- objects the engines run (containers, pods) ----------------------------------------------

MANAGED = f"{PREFIX}.managed"
"""``"true"`` on every container, pod, network and volume lockstep made: what audits,
clean-ups and NetworkPolicies select on."""

PROJECT = f"{PREFIX}.project"
"""The project (folder name under ``environments/``). On project images, on everything a
project's server, job or service runs, and on the project's networks and volumes."""

USER = f"{PREFIX}.user"
"""The hub user a server or job runs for (a label-safe slug; a pod annotation keeps the
full name)."""

STAGE = f"{PREFIX}.stage"
"""The stage (``dev``, ``qa``, ...) whose pointer chose the image, or ``pinned``."""

DIGEST = f"{PREFIX}.digest"
"""The image digest (``sha256:...``) the container or pod runs."""

IMAGE = f"{PREFIX}.image"
"""The full image reference (``REPO@sha256:...``): on service containers, and a pod
annotation (a label value cannot hold it)."""

SESSION = f"{PREFIX}.session"
"""The id of the session-log entry (``sessions.jsonl``) a server or job belongs to."""

SERVER_NAME = f"{PREFIX}.server-name"
"""The JupyterHub named-server name ('' for the default server)."""

KIND = f"{PREFIX}.kind"
"""What a non-server container is: ``service`` (``lockstep deploy``) or ``job``
(``lockstep run``). Absent on notebook servers."""

ROLE = f"{PREFIX}.role"
"""A helper container's job: ``volume-init`` (prepares a volume), ``sbom`` (reads an
image's conda-meta). Such containers are one-shot and always removed."""

GATE = f"{PREFIX}.gate"
"""On a promotion gate's container: which gate runs in it (``notebooks``)."""

# -- services (``lockstep deploy``) ----------------------------------------------------------

SERVICE_PORT = f"{PREFIX}.service-port"
"""The host port a service replica publishes (its deployer keeps ports unique by it)."""

REPLICA = f"{PREFIX}.replica"
"""The replica index (``0``, ``1``, ...) of a service container."""

HEALTH = f"{PREFIX}.health"
"""The HTTP path a service replica's health check GETs (the project's ``service.health``)."""

MODEL_DIGEST = f"{PREFIX}.model-digest"
"""The model (``spawner.models``) a service replica serves, mounted read-only with it."""

# -- volumes ---------------------------------------------------------------------------------

VOLUME = f"{PREFIX}.volume"
"""On a Docker volume lockstep creates: the mount kind it backs (``home``, ``workspace``)."""

# -- pod annotations (Kubernetes: what a label value cannot hold) ----------------------------

RUNTIME = f"{PREFIX}.runtime"
"""Annotation: the container runtime (runtime class) the project asked for."""

PIDS_LIMIT = f"{PREFIX}.pids-limit"
"""Annotation: the pids limit the project asked for (Kubernetes sets it per node, not per
pod, so the pod records it)."""


def selector(key: str, value: str) -> str:
    """``key=value``, the form Docker's label filters and ``docker ps --filter`` take."""
    return f"{key}={value}"


def is_lockstep_key(key: str) -> bool:
    """Whether ``key`` is one of lockstep's own (``org.lockstep.*``): a site's or a parent
    spawner's labels may never set or override these."""
    return key.startswith(PREFIX + ".")
