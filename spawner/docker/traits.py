"""The Docker spawner's options, as traits: ``c.LockstepDockerSpawner.*``.

Kept apart from ``dockerspawner`` so the glue stays short. Every option has help text with
an example; validators return the (normalised) value. Hardening can only be relaxed here,
by the admin: nothing a user sends in ``user_options`` reaches these traits.
"""

from __future__ import annotations

from copy import deepcopy

from traitlets import Bool, Dict, Float, HasTraits, Integer, List, TraitError, Unicode, validate
from traitlets.config import Config, LazyConfigValue

from spawner.cuda import parse_version
from spawner.docker.gpu import GPU_MODES
from spawner.docker.inherited import WEAKENINGS, WeakeningRefused, from_traits, owned_keys
from spawner.docker.inherited import refusal as weakening_refusal
from spawner.docker.inherited import weakenings as find_weakenings
from spawner.docker.parentaudit import AUDIT, refused_lines
from spawner.launch.spec import Hardening
from spawner.traitaudit import REFUSED, SettingRefused, refusal_message

HARDENING_KEYS = set(Hardening.__dataclass_fields__)
SECTIONS = ("Spawner", "DockerSpawner", "LockstepDockerSpawner")
CHECKED = {"extra_host_config": {}, "extra_create_kwargs": {}, "volumes": {},
           "read_only_volumes": {}, "mounts": [], "links": {}, "network_name": "bridge",
           "allow_weakening": []}


class LockstepDockerTraits(HasTraits):
    """Options of ``LockstepDockerSpawner`` (mixed into it)."""

    hardening = Dict(
        {},
        help="""
        Hardening items to turn off, site-wide (admin config only; users cannot).

        Keys: read_only_root, cap_drop_all, no_new_privileges, seccomp_default,
        run_as_non_root. Every item is on unless set to False here.

            c.LockstepDockerSpawner.hardening = {"read_only_root": False}
        """,
    ).tag(config=True)

    @validate("hardening")
    def _validate_hardening(self, proposal):
        value = dict(proposal["value"])
        unknown = sorted(set(value) - HARDENING_KEYS)
        if unknown:
            raise ValueError(f"unknown hardening keys {unknown}; allowed: {sorted(HARDENING_KEYS)}")
        return {k: bool(v) for k, v in value.items()}

    allow_weakening = List(
        Unicode(),
        [],
        help=f"""
        DockerSpawner settings lockstep may apply although they weaken its hardening.

        Without an entry here, a trait that asks for one of these stops the hub at start
        with a message naming the trait and this override (and refuses every spawn).
        Names: {", ".join(sorted(WEAKENINGS))}.

        The check at start is ``spawner.docker.spawner.check_config(c)``: a site's own
        ``jupyterhub_config.py`` should end with it (``spawner.docker.hubconfig.configure``
        calls it last; settings made after ``configure`` need the line again). JupyterHub
        offers a spawner no hook that runs at hub start, so without that line a weakening
        trait is refused only when a spawner is created (at each spawn and for each running
        server the hub re-adopts), not when the hub starts.

            c.LockstepDockerSpawner.allow_weakening = ["cap_add"]  # with extra_host_config
            ...
            from spawner.docker.spawner import check_config
            check_config(c)  # the last line of jupyterhub_config.py
        """,
    ).tag(config=True)

    @validate("allow_weakening")
    def _validate_allow_weakening(self, proposal):
        unknown = sorted(set(proposal["value"]) - set(WEAKENINGS))
        if unknown:
            raise ValueError(f"unknown allow_weakening names {unknown}; "
                             f"allowed: {sorted(WEAKENINGS)}")
        return list(proposal["value"])

    gpu_mode = Unicode(
        "auto",
        help=f"""
        How GPUs are requested from the engine: one of {', '.join(GPU_MODES)}.

        'auto' reads `docker info`: an 'nvidia' runtime means 'nvidia' (DeviceRequests with
        the nvidia driver); CDI spec dirs mean 'cdi' (Docker 25+); otherwise GPU
        projects are refused with what to install. On Podman 'auto' refuses too: its
        Docker-compatible API drops GPU requests in Podman 4 (see ``spawner.docker.gpu``); an
        explicit 'cdi' is trusted on Podman 5+.

            c.LockstepDockerSpawner.gpu_mode = "cdi"
        """,
    ).tag(config=True)

    @validate("gpu_mode")
    def _validate_gpu_mode(self, proposal):
        if proposal["value"] not in GPU_MODES:
            raise ValueError(f"gpu_mode must be one of {GPU_MODES}, got {proposal['value']!r}")
        return proposal["value"]

    host_cuda_version = Unicode(
        "",
        help="""
        The CUDA version this Docker host's NVIDIA driver supports (what ``nvidia-smi`` prints
        after "CUDA Version:"). A project whose project.yaml states ``gpu: {cuda: ">=X.Y"}``
        is refused, before anything is created, when this is older. '' reads it from
        ``nvidia-smi`` on the hub's host when that is on PATH (and skips the check when not:
        set it when the hub runs where nvidia-smi cannot see the Docker host's driver).

            c.LockstepDockerSpawner.host_cuda_version = "12.4"
        """,
    ).tag(config=True)

    @validate("host_cuda_version")
    def _validate_host_cuda_version(self, proposal):
        if proposal["value"]:
            parse_version(proposal["value"], where="host_cuda_version")
        return proposal["value"]

    runtime_names = Dict(
        {},
        help="""
        Engine runtime name for each project ``isolation`` (merged over the defaults
        gvisor -> runsc, kata -> kata-runtime).

            c.LockstepDockerSpawner.runtime_names = {"kata": "kata-qemu"}
        """,
    ).tag(config=True)

    firewall = Bool(
        True,
        help="""
        Keep project networks apart and away from host ports with iptables rules
        (see spawner.docker.firewall); needs root or CAP_NET_ADMIN. Turn off only when the host
        firewall does the same job.

            c.LockstepDockerSpawner.firewall = False
        """,
    ).tag(config=True)

    allowed_host_ports = List(
        Integer(),
        [],
        help="""
        Host TCP ports project containers may reach besides the Hub's own port.

            c.LockstepDockerSpawner.allowed_host_ports = [3128]  # a host proxy
        """,
    ).tag(config=True)

    allowed_egress = List(
        Unicode(),
        [],
        help="""
        Destinations lockstep containers may reach although the firewall blocks their range
        (10/8, 100.64/10, 172.16/12, 192.168/16, and any address of the host itself): each
        ``CIDR``, ``CIDR:PORT`` or ``CIDR:PORT/udp`` (TCP unless /udp; every port when none
        is given). The Hub's port on the bridge gateway and DNS to the host's nameservers
        are always allowed; IPv6 and link-local (169.254.0.0/16, cloud metadata) cannot be.
        The twin of the chart's ``singleuser.networkPolicy.projectEgress.<p>.cidrs``.

            c.LockstepDockerSpawner.allowed_egress = ["10.20.0.5/32:5432", "10.20.0.53:53/udp"]
        """,
    ).tag(config=True)

    @validate("allowed_egress")
    def _validate_allowed_egress(self, proposal):
        from spawner.docker.egress import EgressError, parse_all

        try:
            parse_all(proposal["value"])
        except EgressError as exc:
            raise TraitError(str(exc)) from None
        return proposal["value"]

    network_internal = Bool(
        False,
        help="""
        Create project networks with --internal: no egress beyond the host.

            c.LockstepDockerSpawner.network_internal = True
        """,
    ).tag(config=True)

    volume_ownership = Unicode(
        "chown",
        help="""
        How new home/workspace volumes become writable by uid 1000: 'chown' runs a one-shot
        container (only CAP_CHOWN/FOWNER, no network) when lockstep creates the volume;
        'image' relies on the image having the mount point owned by uid 1000.

            c.LockstepDockerSpawner.volume_ownership = "image"
        """,
    ).tag(config=True)

    seed_workspace = Bool(
        True,
        help="""
        Seed a project's new workspace with the project's notebooks.

        When lockstep creates a project's workspace volume (its first server, job or
        service on this engine), the 'chown' helper container also copies
        ``<c.Lockstep.notebooks_dir>/<project>/`` (bound read-only) into the workspace root,
        owned by uid 1000, so JupyterLab opens on them. Only regular files and folders are
        copied (symbolic links are skipped, never followed), nothing is overwritten, and an
        existing workspace is never touched again, so users' edits stay. A project without a
        notebooks folder seeds nothing. Needs ``volume_ownership = "chown"``.

            c.LockstepDockerSpawner.seed_workspace = False
        """,
    ).tag(config=True)

    tmpfs_size = Unicode(
        "1Gi",
        help="""
        Size of the tmpfs mounted at /tmp (the root filesystem is read-only).

            c.LockstepDockerSpawner.tmpfs_size = "4Gi"
        """,
    ).tag(config=True)

    extra_labels = Dict(
        {},
        help="""
        Extra labels on every container this spawner creates (for cleanup or accounting).
        lockstep's own ``org.lockstep.*`` labels cannot be overridden.

            c.LockstepDockerSpawner.extra_labels = {"com.example.cost-center": "ds"}
        """,
    ).tag(config=True)

    ready_timeout = Float(
        20.0,
        help="""
        Seconds start() polls the server's HTTP endpoint (after 50 ms, backing off to every
        250 ms; no HTTP request before its port accepts) before returning,
        so the Hub's randomized back-off wait finds it up at once. 0 turns this off.

            c.LockstepDockerSpawner.ready_timeout = 5
        """,
    ).tag(config=True)

    docker_workers = Integer(
        8,
        help="""
        Threads for blocking Docker calls, shared by all spawners (DockerSpawner uses one).

            c.LockstepDockerSpawner.docker_workers = 16
        """,
    ).tag(config=True)

    info_ttl = Float(
        30.0,
        help="""
        Seconds a `docker info` answer (runtimes, GPU support) is reused.

            c.LockstepDockerSpawner.info_ttl = 300
        """,
    ).tag(config=True)

    start_slots = Integer(
        0,
        help="""
        How many servers may boot at once (from creating the container until the server
        answers); later spawns wait for a slot, with a line on the spawn page.

        Booting a notebook server is CPU-bound, so when many users start together, booting
        a few at a time gets most servers up sooner than booting them all side by side
        (on 2 CPUs, of 20 spawns at once the median one is up in about half the time), and
        keeps slow boots clear of ``http_timeout``. 0: the engine's CPU count (``docker
        info``); a negative number: no limit.

            c.LockstepDockerSpawner.start_slots = 8
        """,
    ).tag(config=True)

    start_slot_grace = Float(
        10.0,
        help="""
        Seconds a booting server may hold its start slot; after that the next spawn goes
        ahead even though this server has not answered yet, so one hung start cannot hold
        up everyone behind it.

            c.LockstepDockerSpawner.start_slot_grace = 30
        """,
    ).tag(config=True)


def configured(config: Config, name: str):
    """The value ``config`` gives trait ``name`` of ``LockstepDockerSpawner`` (its own
    section over ``DockerSpawner`` over ``Spawner``, as traitlets resolves it)."""
    value = deepcopy(CHECKED[name])
    for section in SECTIONS:
        if not config._has_section(section) or name not in config[section]:
            continue
        given = config[section][name]
        value = given.get_value(value) if isinstance(given, LazyConfigValue) else given
    return value


def site_refusal(config: Config) -> str:
    """'' when the site's static DockerSpawner settings keep lockstep's hardening (or the
    site allows what they weaken); else the message that stops the hub. Callables are
    checked at each spawn, when they can be called."""
    values = {name: configured(config, name) for name in CHECKED}
    static = {k: v for k, v in values.items() if not callable(v)}
    static.pop("allow_weakening")
    inherited = from_traits(**static)
    return weakening_refusal(find_weakenings(inherited), values["allow_weakening"],
                             owned_keys(inherited))


def set_in_config(config: Config, names) -> dict:
    """Trait -> value for each of ``names`` that ``config`` sets for LockstepDockerSpawner
    (in any of its sections); a trait the site did not set is not in the result."""
    found: dict = {}
    for section in SECTIONS:
        if not config._has_section(section):
            continue
        for name in names:
            if name in config[section]:
                given = config[section][name]
                found[name] = (given.get_value(deepcopy(found.get(name, {})))
                               if isinstance(given, LazyConfigValue) else given)
    return found


def settings_refusal(config: Config) -> str:
    """'' when every parent trait the site set is one lockstep honours
    (``spawner.docker.parentaudit``); else the message naming each and its fix."""
    refusable = [name for name, entry in AUDIT.items() if entry.verdict == REFUSED]
    hub = config.JupyterHub if config._has_section("JupyterHub") else {}
    return refusal_message(refused_lines(set_in_config(config, refusable),
                                         hub.get("internal_ssl", False)), "DockerSpawner")


def check_config(config: Config) -> None:
    """The hub-start check (the twin of ``spawner.kube.spawner.check_config``): raise
    ``WeakeningRefused``, naming each trait and its override, when ``site_refusal`` has a
    message, and ``SettingRefused`` (with both messages) when a parent trait is set to a
    value lockstep cannot honour (``settings_refusal``). Call it last in
    ``jupyterhub_config.py``: ``check_config(c)``; JupyterHub then logs the message and
    exits with status 1 before it starts the proxy."""
    allowed = configured(config, "allow_weakening")
    unknown = sorted(set(allowed) - set(WEAKENINGS)) if not callable(allowed) else []
    if unknown:
        raise WeakeningRefused(f"c.LockstepDockerSpawner.allow_weakening: unknown names "
                               f"{unknown}; allowed: {sorted(WEAKENINGS)}")
    message, settings = site_refusal(config), settings_refusal(config)
    if settings:
        raise SettingRefused("\n".join(m for m in (settings, message) if m))
    if message:
        raise WeakeningRefused(message)


check_site_config = check_config  # the name the spawner and older tests use
