"""The Docker spawner's options, as traits: ``c.LockstepDockerSpawner.*``.

Kept apart from ``dockerspawner`` so the glue stays short. Every option has help text with
an example; validators return the (normalised) value. Hardening can only be relaxed here,
by the admin: nothing a user sends in ``user_options`` reaches these traits.
"""

from __future__ import annotations

from traitlets import Bool, Dict, Float, HasTraits, Integer, List, Unicode, validate

from spawner.docker.gpu import GPU_MODES
from spawner.launch.spec import Hardening

HARDENING_KEYS = set(Hardening.__dataclass_fields__)


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
        Seconds start() polls the server's HTTP endpoint (every 50 ms) before returning,
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
