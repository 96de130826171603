"""Every configurable trait of ``DockerSpawner`` and ``Spawner``: what the Docker spawner does.

The audit (``spawner.traitaudit``) for ``LockstepDockerSpawner``: each trait is honoured,
refused at hub start when set to a value lockstep cannot honour (``refused_lines``, called
by ``spawner.docker.traits.check_config``), or not applicable with the reason.
``tests/unit/docker/test_parentaudit.py`` fails when the installed DockerSpawner or
JupyterHub has a configurable trait that is not here.

Weakening traits (``extra_host_config``, ``volumes``, ``network_name``...) are honoured
here: what would weaken hardening in them is refused by ``spawner.docker.inherited`` with
its own override (``c.LockstepDockerSpawner.allow_weakening``).

Pure data and one pure function; it must not read config sections (``traits`` does) nor
talk to the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spawner import traitaudit
from spawner.traitaudit import Entry, honoured, not_applicable, refusal_lines, refused

D, S = "DockerSpawner", "Spawner"
WEAKENING = (
    "; a value that weakens hardening is refused at hub start, naming it, unless "
    "c.LockstepDockerSpawner.allow_weakening allows it"
)
IMAGE = (
    "lockstep runs the image of the project and stage the user picks, by digest from "
    "the stage pointer (`lockstep promote` moves it); who may run what is project.yaml "
    "`members`"
)
NAME = (
    "lockstep names a server's container `{prefix}-<user>[--<server>]` (prefix: "
    "c.LockstepDockerSpawner.prefix) so it never takes the name of a job, a model "
    "service or another user's server; DockerSpawner's own default templates are accepted"
)
REMOVE = (
    "lockstep removes a server's container when it stops and creates a fresh one "
    "from the stage's digest at each start (home and workspace are named volumes and "
    "stay); set it to True or remove it"
)
NO_PUBLISH = (
    "lockstep never publishes a server's port on the host: the hub reaches the "
    "server at its IP on the project's own network (use_internal_ip)"
)
SSL = (
    "used only with c.JupyterHub.internal_ssl, which the Docker spawner refuses at hub "
    "start (its certificates volume is not mounted and the hub connects by IP)"
)
# DockerSpawner's default templates: the names lockstep gives (its user slug, not escape())
NAME_DEFAULTS = ("", "{prefix}-{username}", "{prefix}-{username}--{servername}")
IGNORED = "deprecated; DockerSpawner itself ignores it with a warning"

AUDIT: dict[str, Entry] = {
    # -- DockerSpawner -------------------------------------------------------------------
    "allowed_images": refused(D, IMAGE, lambda v: not v),
    "image_whitelist": refused(
        D, IMAGE + " (image_whitelist is allowed_images' old name)", lambda v: not v
    ),
    "image": refused(D, IMAGE),
    "container_image": refused(D, IMAGE + " (container_image is image's old name)"),
    "name_template": refused(D, NAME, lambda v: v in NAME_DEFAULTS),
    "container_name_template": refused(D, NAME, lambda v: v in NAME_DEFAULTS),
    "remove": refused(D, REMOVE, lambda v: v is True),
    "remove_containers": refused(D, REMOVE, lambda v: v is True),
    "host_ip": refused(D, NO_PUBLISH),
    "container_ip": refused(D, NO_PUBLISH + " (container_ip is host_ip's old name)"),
    "use_internal_ip": refused(D, NO_PUBLISH + "; True is lockstep's default", lambda v: v is True),
    "use_internal_hostname": refused(
        D,
        "the hub connects to the container's IP on the project network; container names "
        "do not resolve from the hub",
        lambda v: v is False,
    ),
    "certs_volume_name": not_applicable(D, SSL),
    "move_certs_image": not_applicable(D, SSL),
    "client_kwargs": honoured(D, "the Docker client lockstep uses is DockerSpawner's `client`"),
    "tls_config": honoured(D, "the Docker client lockstep uses is DockerSpawner's `client`"),
    "tls": not_applicable(D, IGNORED + " (use tls_config)"),
    "tls_verify": not_applicable(D, IGNORED + " (use tls_config)"),
    "tls_ca": not_applicable(D, IGNORED + " (use tls_config)"),
    "tls_cert": not_applicable(D, IGNORED + " (use tls_config)"),
    "tls_key": not_applicable(D, IGNORED + " (use tls_config)"),
    "tls_assert_hostname": not_applicable(D, IGNORED + " (use tls_config)"),
    "use_docker_client_env": not_applicable(D, IGNORED + " (DOCKER_* variables always apply)"),
    "hub_ip_connect": not_applicable(D, IGNORED + " (use c.JupyterHub.hub_connect_ip)"),
    "container_port": honoured(D, "port's old name: the port the server listens on"),
    "container_prefix": honoured(D, "prefix's old name: the first part of container names"),
    "prefix": honoured(D, "the first part of container names (lockstep's default: 'lockstep')"),
    "cpu_limit": honoured(
        D,
        "NanoCpus: the smaller of the project's `resources.cpu` and "
        "this (callables are called per spawn)",
    ),
    "mem_limit": honoured(
        D,
        "Memory (and MemorySwap, no extra swap): the smaller of the "
        "project's `resources.memory` and this",
    ),
    "escape": honoured(D, "escapes the user and server names in volume name templates"),
    "format_volume_name": honoured(
        D, "fills `{username}`... in volumes, read_only_volumes and mounts"
    ),
    "extra_host_config": honoured(
        D,
        "merged into HostConfig (lists are added to lockstep's; "
        "limits take the smaller value)" + WEAKENING,
    ),
    "extra_create_kwargs": honoured(
        D,
        "merged into the create body (Env and Labels under "
        "lockstep's own; Image, Cmd, HostConfig, "
        "NetworkingConfig and ExposedPorts are refused by "
        "name)" + WEAKENING,
    ),
    "volumes": honoured(
        D,
        "named volumes mounted beside lockstep's (a target lockstep "
        "mounts is refused at spawn)" + WEAKENING + " (host paths)",
    ),
    "read_only_volumes": honoured(
        D, "named volumes mounted read-only" + WEAKENING + " (host paths)"
    ),
    "mounts": honoured(D, "HostConfig.Mounts beside lockstep's" + WEAKENING + " (binds)"),
    "links": honoured(D, "HostConfig.Links"),
    "network_name": honoured(
        D,
        "the container also joins it (after its project network), "
        "only with allow_weakening = ['network']: another network "
        "is shared with other projects" + WEAKENING,
    ),
    "post_start_cmd": honoured(D, "run in the started container as the server's own user"),
    "pull_policy": honoured(D, "ifnotpresent, always, never or skip for the stage's digest"),
    # -- Spawner -------------------------------------------------------------------------
    "apply_user_options": honoured(
        S,
        "lockstep's default checks user_options before start; "
        "a site's own hook replaces that early check (start "
        "still refuses a malformed request)",
    ),
    "args": honoured(S, "appended to the server's command"),
    "cmd": honoured(
        S,
        "the server's command (lockstep's default: "
        "/opt/env/bin/jupyterhub-singleuser, the project's environment)",
    ),
    "cpu_guarantee": honoured(
        S,
        "CpuShares = 1024 x min(this, the CPU limit): Docker's "
        "relative CPU weight under contention (Docker reserves no "
        "CPU)",
    ),
    "mem_guarantee": honoured(S, "MemoryReservation (a soft limit), never above the memory limit"),
    "environment": honoured(S, "the server's environment, under lockstep's own variables"),
    "env_keep": honoured(S, "the server's environment (JupyterHub's get_env)"),
    "default_url": honoured(S, "passed to the server by JupyterHub (get_env/get_args)"),
    "notebook_dir": honoured(S, "passed to the server by JupyterHub (get_env/get_args)"),
    "disable_user_config": honoured(S, "passed to the server by JupyterHub (get_env)"),
    "debug": honoured(S, "passed to the server by JupyterHub (get_args)"),
    "ip": honoured(S, "the address the server binds in its container"),
    "port": honoured(S, "the port the server listens on (ExposedPorts; never published)"),
    "hub_connect_url": honoured(
        S, "how servers reach the hub (lockstep's default: the project network's gateway)"
    ),
    "options_form": honoured(
        S,
        "lockstep's default is its project x stage form; a site's "
        "own form must send project/stage (anything else is refused "
        "at spawn, naming the allowed keys)",
    ),
    "options_from_form": honoured(
        S, "lockstep's default reads its own form; a site's own replaces it"
    ),
    "ssl_alt_names": not_applicable(S, SSL),
    "ssl_alt_names_include_local": not_applicable(S, SSL),
    **traitaudit.hub_applied(),
}


def refused_lines(values: Mapping[str, Any], internal_ssl: object = False) -> list[str]:
    """One line per setting in ``values`` (trait -> value the site set) that lockstep cannot
    honour; ``internal_ssl`` is ``c.JupyterHub.internal_ssl``."""
    lines = refusal_lines(AUDIT, values)
    if internal_ssl is True:
        lines.append(
            "- c.JupyterHub.internal_ssl = True: the Docker spawner does not mount "
            "DockerSpawner's certificates volume and the hub connects to servers by "
            "IP on each project's own network (kept apart by lockstep's firewall); "
            "remove it"
        )
    return lines
