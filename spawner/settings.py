"""lockstep's site configuration, one traitlets class for the CLI and the hub.

The same ``c.Lockstep.*`` options are read from ``lockstep_config.py`` by the CLI and
from ``jupyterhub_config.py`` by the spawners, so a site states its channels, mirrors,
registry and stages once.

This module guarantees that every option carries help text with an example, and that
loading settings never writes anything. It must not hold project logic.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from traitlets import Bool, Dict, Float, Integer, List, TraitError, Unicode, default, validate
from traitlets.config import Config, Configurable, PyFileConfigLoader

from spawner.errors import LockstepError

ENV_PREFIX = "/opt/env"
"""The one prefix every project environment has inside its image (shared layers need it)."""

DEFAULT_STAGES = ["dev", "qa", "prod"]


def unknown_stage(stage: str, stages: Sequence[str]) -> str:
    """The one message for a stage name the site does not have: what, the choices, the fix.

    Every caller (spawn form, ``lockstep run``, ``promote``, ``rollback``) raises its own
    error type with this text, so the wording cannot drift. Pure.
    """
    return (f"unknown stage {stage!r}; this site's stages are {', '.join(stages)} "
            "(c.Lockstep.stages)")


class Lockstep(Configurable):
    """Site settings shared by the ``lockstep`` CLI and the lockstep spawners."""

    environments_dir = Unicode(
        "environments",
        help="""
        Folder holding one sub-folder per project (``environment.yml``, ``project.yaml``).

        Relative paths are taken from the current directory.

            c.Lockstep.environments_dir = "/srv/lockstep/environments"
        """,
    ).tag(config=True)

    notebooks_dir = Unicode(
        "notebooks",
        help="""
        Folder holding ``<project>/*.ipynb`` notebooks that promotion runs as gates.

            c.Lockstep.notebooks_dir = "/srv/lockstep/notebooks"
        """,
    ).tag(config=True)

    data_dir = Unicode(
        help="""
        Where lockstep keeps its state: registry storage, audit trail, session log.

        Defaults to ``$XDG_DATA_HOME/lockstep`` (``~/.local/share/lockstep``).

            c.Lockstep.data_dir = "/var/lib/lockstep"
        """,
    ).tag(config=True)

    @default("data_dir")
    def _default_data_dir(self) -> str:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return str(Path(base) / "lockstep")

    cache_dir = Unicode(
        help="""
        Where lockstep caches downloaded packages, built rootfs and test channels.

        Defaults to ``$XDG_CACHE_HOME/lockstep`` (``~/.cache/lockstep``).

            c.Lockstep.cache_dir = "/var/cache/lockstep"
        """,
    ).tag(config=True)

    @default("cache_dir")
    def _default_cache_dir(self) -> str:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return str(Path(base) / "lockstep")

    channel_urls = Dict(
        {"conda-forge": "https://conda.anaconda.org/conda-forge"},
        help="""
        Map from the channel names users write in ``environment.yml`` to the URL solved against.

        The URL is recorded in the lock as it is, so use the URL your site means to
        record (``https://``, ``http://`` or ``file://``). A name not listed here is
        refused, with this option named as the fix.

            c.Lockstep.channel_urls = {"conda-forge": "https://conda.example.com/conda-forge"}
        """,
    ).tag(config=True)

    @validate("channel_urls")
    def _validate_channel_urls(self, proposal):
        value = proposal["value"]
        for name, url in value.items():
            if not str(url).startswith(("https://", "http://", "file://")):
                raise TraitError(
                    f"c.Lockstep.channel_urls[{name!r}] = {url!r} is not a URL; "
                    "use https://, http:// or file://, "
                    f"e.g. {{'{name}': 'file:///srv/channels/{name}'}}"
                )
        return {name: str(url).rstrip("/") for name, url in value.items()}

    mirrors = Dict(
        {},
        help="""
        URL prefixes served from elsewhere at download time, as rattler and conda mirrors work.

        A lock keeps the URLs it was solved against; when installing, a package URL that
        starts with a key here is fetched from the value instead, and its sha256 is still
        checked against the lock.

            c.Lockstep.mirrors = {
                "https://conda.anaconda.org/conda-forge": "http://mirror.internal/conda-forge",
            }
        """,
    ).tag(config=True)

    platforms = List(
        Unicode(),
        ["linux-64"],
        help="""
        Platforms ``lockstep lock`` solves for when neither the spec nor ``--platform`` says.

            c.Lockstep.platforms = ["linux-64", "linux-aarch64"]
        """,
    ).tag(config=True)

    virtual_packages = Dict(
        {
            "linux-64": ["__unix=0=0", "__linux=5.10=0", "__glibc=2.36=0", "__archspec=1=x86_64"],
            "linux-aarch64": [
                "__unix=0=0", "__linux=5.10=0", "__glibc=2.36=0", "__archspec=1=aarch64",
            ],
            "osx-64": ["__unix=0=0", "__osx=11.0=0", "__archspec=1=x86_64"],
            "osx-arm64": ["__unix=0=0", "__osx=11.0=0", "__archspec=1=arm64"],
            "win-64": ["__win=0=0", "__archspec=1=x86_64"],
        },
        help="""
        Virtual packages (``name=version=build``) the solver assumes, per platform.

        They describe the machines images run on (and, for osx-* and win-64, the laptops
        that share the lock), not the machine that solves. ``__cuda`` comes from the
        project (``gpu: {cuda: ">=12.0"}`` in project.yaml) and replaces one set here.

            c.Lockstep.virtual_packages = {"linux-64": ["__glibc=2.28=0", "__cuda=12.2=0"]}
        """,
    ).tag(config=True)

    server_packages = List(
        Unicode(),
        ["jupyterhub-singleuser", "ipykernel", "nbclient"],
        help="""
        Packages ``lockstep lock`` adds so the image can serve a notebook for JupyterHub
        and run the project's notebooks headless (promotion gates, jobs).

        A package the spec already names is left as the spec has it.

            c.Lockstep.server_packages = ["jupyterhub-singleuser>=5", "ipykernel", "jupyterlab"]
        """,
    ).tag(config=True)

    registry = Unicode(
        "127.0.0.1:5000/lockstep",
        help="""
        Registry (``HOST[:PORT][/NAMESPACE]``) that ``lockstep build`` pushes to.

        Credentials come from the Docker config file (``~/.docker/config.json``).

            c.Lockstep.registry = "registry.example.com/datascience"
        """,
    ).tag(config=True)

    insecure_registries = List(
        Unicode(),
        ["127.0.0.1", "localhost"],
        help="""
        Registry hosts spoken to over plain HTTP (loopback only, by default).

            c.Lockstep.insecure_registries = ["127.0.0.1", "registry.lab.internal:5000"]
        """,
    ).tag(config=True)

    registry_auth_file = Unicode(
        "",
        help="""
        A Docker config file to read registry credentials from before the Docker config
        (``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``).

        Point it at a mounted ``kubernetes.io/dockerconfigjson`` Secret (the same Secret as
        the pods' ``imagePullSecrets``) so the hub reads stage pointers with the
        credentials the kubelet pulls with. ``auths`` entries, ``credHelpers`` and
        ``credsStore`` are honoured in both files (``docker-credential-<helper> get``).
        Empty: the Docker config only.

            c.Lockstep.registry_auth_file = "/etc/lockstep/registry/.dockerconfigjson"
        """,
    ).tag(config=True)

    prepull_on_promote = Bool(
        False,
        help="""
        On a Docker host, pull the promoted digest onto the host's engine before the stage
        pointer moves.

        ``lockstep promote`` then runs a ``prepull`` gate after the other gates, so the
        first server started on the promoted stage finds its image already pulled; a pull
        that fails stops the promotion. Kubernetes nodes are pre-pulled by the pre-puller
        instead (``lockstep prepull``).

            c.Lockstep.prepull_on_promote = True
        """,
    ).tag(config=True)

    registry_timeout = Float(
        3.0,
        help="""
        Seconds the hub waits for the registry to connect and to answer one stage pointer
        read (tag and manifest HEAD/GET, image config). A read that times out is retried once
        after a short back-off; then the spawn goes on with the last digest the hub read for
        that stage (when it has one and the image is on the host) or fails naming the
        registry. Builds, promotions and pulls keep their own, longer timeouts.

            c.Lockstep.registry_timeout = 10.0
        """,
    ).tag(config=True)

    stage_pointer_ttl = Float(
        5.0,
        help="""
        Seconds the hub reuses a stage pointer it read (one registry read serves every spawn
        and form in that time; 0 reads on every spawn). A promotion reaches new spawns at
        most this long after it was made.

            c.Lockstep.stage_pointer_ttl = 2.0
        """,
    ).tag(config=True)

    remember_stage_pointers = Bool(
        True,
        help="""
        Keep the last digest read for each stage in ``<data_dir>/stage-pointers.json`` too,
        so a hub restarted while the registry is down can still start images on the host.
        The hub always keeps them in memory.

            c.Lockstep.remember_stage_pointers = False
        """,
    ).tag(config=True)

    base_image = Unicode(
        "",
        help="""
        Reference (by digest) of the runtime base image builds start from.

        Empty means the base lockstep builds itself from ``images/base`` and pushes to
        ``registry``.

            c.Lockstep.base_image = "registry.example.com/lockstep/base@sha256:..."
        """,
    ).tag(config=True)

    stages = List(
        Unicode(),
        DEFAULT_STAGES,
        help="""
        Ordered promotion stages. A build sets the first; each promotion moves one step.

            c.Lockstep.stages = ["dev", "staging", "prod"]
        """,
    ).tag(config=True)

    @validate("stages")
    def _validate_stages(self, proposal):
        value = list(proposal["value"])
        if len(value) < 1 or len(set(value)) != len(value):
            raise TraitError(
                f"c.Lockstep.stages = {value!r} must list at least one stage, each once, "
                "e.g. ['dev', 'qa', 'prod']"
            )
        return value

    stage_registries = Dict(
        {},
        help="""
        Registry (``HOST[:PORT][/NAMESPACE]``) holding each stage's pointer, when not ``registry``.

        Promotion across registries copies the missing blobs and keeps the digest.

            c.Lockstep.stage_registries = {"prod": "prod-registry.example.com/lockstep"}
        """,
    ).tag(config=True)

    approvers = List(
        Unicode(),
        [],
        help="""
        Users allowed to approve promotion to the last stage. Empty means anyone but the
        person who promoted the digest to the stage before it.

            c.Lockstep.approvers = ["lead-alice", "ops-bob"]
        """,
    ).tag(config=True)

    allow_self_approval = Bool(
        False,
        help="""
        Let the person who promoted a digest to the previous stage approve it for the last.

            c.Lockstep.allow_self_approval = True
        """,
    ).tag(config=True)

    data_roots = List(
        Unicode(),
        ["data"],
        help="""
        Host folders that project data mounts may come from; any other source is refused.

        A relative ``source`` in ``project.yaml`` is taken from the first root.

            c.Lockstep.data_roots = ["/srv/data", "/mnt/shared"]
        """,
    ).tag(config=True)

    data_target_prefixes = List(
        Unicode(),
        ["/data"],
        help="""
        Container folders that project data mounts may be mounted under.

        A ``target`` in ``project.yaml`` must lie strictly below one of these; it may never
        cover or sit inside ``/opt/env``, a system folder, the home folder or the workspace
        (those rules hold whatever is listed here).

            c.Lockstep.data_target_prefixes = ["/data", "/mnt/reference"]
        """,
    ).tag(config=True)

    datasets = Dict(
        {},
        help="""
        Data sets the site offers by name, and which projects or hub groups may mount each.

        Each value is ``{"source": HOST_PATH, "projects": [...], "groups": [...]}``; a
        relative ``source`` is taken from the first of ``data_roots``. A project mounts one
        with ``dataset: NAME`` instead of ``source:`` in ``project.yaml``; it is refused
        unless the project is listed, or the user starting the server is in a listed group.
        Without a grant here a project may only mount sources under
        ``<data root>/<project>/`` (a link placed there by the data's curator is a grant).

            c.Lockstep.datasets = {
                "sales": {"source": "/srv/data/sales", "projects": ["forecast"],
                          "groups": ["analysts"]},
            }
        """,
    ).tag(config=True)

    @validate("datasets")
    def _validate_datasets(self, proposal):
        value = dict(proposal["value"])
        example = "{'source': '/srv/data/sales', 'projects': ['forecast'], 'groups': []}"
        for name, entry in value.items():
            keys = set(entry) if isinstance(entry, dict) else None
            if keys is None or "source" not in keys or keys - {"source", "projects", "groups"}:
                raise TraitError(
                    f"c.Lockstep.datasets[{name!r}] = {entry!r} must be a mapping with 'source' "
                    f"and optional 'projects' and 'groups' lists, e.g. {example}"
                )
            for key in ("projects", "groups"):
                if not isinstance(entry.get(key, []), (list, tuple)):
                    raise TraitError(
                        f"c.Lockstep.datasets[{name!r}][{key!r}] must be a list, e.g. {example}"
                    )
        return value

    allowed_channels = List(
        Unicode(),
        [],
        help="""
        Channel URLs, besides the values of ``channel_urls``, that specs and locks may use.

        ``lockstep lock`` refuses a spec naming a channel URL that is neither here nor a
        value of ``channel_urls``, and ``lockstep build`` refuses a lock with a package from
        such a channel, before anything is fetched. ``file://`` channels work only when
        listed (here or in ``channel_urls``); ``http://`` ones only for hosts in
        ``insecure_channel_hosts``. The default (empty) allows exactly the site's
        ``channel_urls`` (conda-forge's canonical URL unless you change it).

            c.Lockstep.allowed_channels = ["https://conda.anaconda.org/bioconda",
                                           "file:///srv/channels/internal"]
        """,
    ).tag(config=True)

    insecure_channel_hosts = List(
        Unicode(),
        [],
        help="""
        Hosts (``HOST`` or ``HOST:PORT``) whose channels may be read over plain ``http://``.

        Empty by default: every ``http://`` channel is refused. Archives are still checked
        against the lock's sha256, but repodata read over HTTP can be altered in transit.

            c.Lockstep.insecure_channel_hosts = ["mirror.lab.internal:8080"]
        """,
    ).tag(config=True)

    pip_index_url = Unicode(
        "https://pypi.org/simple",
        help="""
        The package index (PEP 503 simple API) ``pip:`` sections of specs resolve against.

        A spec may name another with ``--index-url``/``--extra-index-url`` lines only when
        that index is this one or listed in ``pip_allowed_indexes``. Must be ``https://``
        unless its host is in ``insecure_channel_hosts``.

            c.Lockstep.pip_index_url = "https://pypi.lab.internal/simple"
        """,
    ).tag(config=True)

    pip_allowed_indexes = List(
        Unicode(),
        [],
        help="""
        Package index URLs, besides ``pip_index_url``, that specs' pip sections may name.

            c.Lockstep.pip_allowed_indexes = ["https://download.pytorch.org/whl/cu121"]
        """,
    ).tag(config=True)

    pypi_mapping = Unicode(
        "",
        help="""
        A conda-lock PyPI-to-conda lookup file (``--pypi_to_conda_lookup_file`` format,
        JSON or YAML: ``{pypi_name: {conda_name: ..., pypi_name: ...}}``).

        lockstep learns which PyPI distributions a conda package provides from the
        package's own ``*.dist-info``; this file adds names for packages that carry none,
        so a pip requirement never installs a second copy of a conda package. Empty: none.

            c.Lockstep.pypi_mapping = "/etc/lockstep/pypi-mapping.yaml"
        """,
    ).tag(config=True)

    pip_allow_sdists = Bool(
        False,
        help="""
        Whether a pip package with no wheel for a locked platform may be locked by its
        source distribution.

        Off by default: ``lockstep lock`` refuses it, naming the package, and suggests a
        wheel or a conda package. When on, the sdist is locked (URL and sha256), but
        ``lockstep install``/``build`` still refuse to build it.

            c.Lockstep.pip_allow_sdists = True
        """,
    ).tag(config=True)

    build_sandbox = Unicode(
        "bwrap",
        help="""
        How ``lockstep build`` runs package code (the environment's own python compiling
        bytecode): ``"bwrap"`` (bubblewrap: no network, empty environment, private user
        namespace, read-only environment, only a fresh output folder writable) or
        ``"none"``.

        ``"none"`` is UNSAFE: a package in a lock then runs code on the build host as the
        builder, with its files and credentials. Use it only where bubblewrap cannot run
        and every channel is fully trusted.

            c.Lockstep.build_sandbox = "none"  # unsafe: runs package code unsandboxed
        """,
    ).tag(config=True)

    @validate("build_sandbox")
    def _validate_build_sandbox(self, proposal):
        value = proposal["value"]
        if value not in ("bwrap", "none"):
            raise TraitError(
                f"c.Lockstep.build_sandbox = {value!r}; allowed: 'bwrap' (default) or 'none' "
                "(unsafe), e.g. c.Lockstep.build_sandbox = 'bwrap'"
            )
        return value

    layer_limit = Integer(
        100,
        help="""
        Most layers an image may have (Docker 20.10 refuses more than 125).

            c.Lockstep.layer_limit = 60
        """,
    ).tag(config=True)

    layer_order = List(
        Unicode(),
        [],
        help="""
        Ordered packages whose dependency closures form the bottom layers of every image.

        Docker and containerd reuse a pulled layer only when every layer below it is the
        same, so what most projects share goes first: package ``i``'s closure (less the
        earlier ones) is tier ``i``, everything else comes last; each tier is grouped into
        layers by content-defined boundaries (``spawner.image.grouping``). Empty (the
        default): ``python`` then ``c.Lockstep.server_packages``. One rule for the whole
        site: changing it changes every image digest (the next build of each project
        pushes new layers).

            c.Lockstep.layer_order = ["python", "jupyterhub-singleuser", "ipykernel", "numpy"]
        """,
    ).tag(config=True)

    def data_path(self, *parts: str) -> Path:
        """Return a path under ``data_dir``."""
        return Path(self.data_dir).expanduser().joinpath(*parts)

    def cache_path(self, *parts: str) -> Path:
        """Return a path under ``cache_dir``."""
        return Path(self.cache_dir).expanduser().joinpath(*parts)

    def project_dir(self, name: str) -> Path:
        """Return ``environments_dir/<name>``."""
        return Path(self.environments_dir).expanduser() / name


def find_config_file(explicit: str | None = None) -> Path | None:
    """The config file to read: the one given, ``$LOCKSTEP_CONFIG`` or ``./lockstep_config.py``."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise LockstepError(
                f"config file {explicit} does not exist; pass an existing lockstep_config.py"
            )
        return path
    env = os.environ.get("LOCKSTEP_CONFIG")
    if env:
        return find_config_file(env)
    local = Path("lockstep_config.py")
    return local if local.is_file() else None


def load_config(path: Path | None) -> Config:
    """Read a traitlets Python config file into a ``Config`` (empty when ``path`` is None)."""
    if path is None:
        return Config()
    loader = PyFileConfigLoader(path.name, path=str(path.parent.resolve()))
    return loader.load_config()


def load_settings(config_file: str | None = None, config: Config | None = None) -> Lockstep:
    """Build the site settings from a config file, then overlay ``config``."""
    cfg = load_config(find_config_file(config_file))
    if config is not None:
        cfg.merge(config)
    return Lockstep(config=cfg)
