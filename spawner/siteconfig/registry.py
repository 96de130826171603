"""Where images live and how stage pointers are read, moved and approved.

A mixin of ``spawner.settings.Lockstep``: these traits are ``c.Lockstep.*``. Every option
carries help text with an example; validators return the value. No I/O.
"""

from __future__ import annotations

from traitlets import Bool, Dict, Float, HasTraits, List, TraitError, Unicode, validate

DEFAULT_STAGES = ["dev", "qa", "prod"]


class RegistrySettings(HasTraits):
    """``c.Lockstep`` options:
    where images live and how stage pointers are read, moved and approved."""

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

    prepull_values_file = Unicode(
        "",
        help="""
        A file that every promotion and rollback rewrites with the pre-puller values.

        After a stage pointer moves (``lockstep promote``, ``rollback``, the lockstep
        service), lockstep writes Zero to JupyterHub ``prePuller.extraImages`` values for
        what every stage now holds, by digest (the same text ``lockstep prepull`` prints),
        atomically. A deploy job that runs ``helm upgrade ... -f`` with this file after
        each promotion keeps the nodes' pre-pulled images in step with the stages. Empty
        (the default): nothing is written.

            c.Lockstep.prepull_values_file = "/srv/lockstep/prepull-values.yaml"
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

    allow_any_digest = Bool(
        False,
        help="""
        Let ``user_options["digest"]`` start any manifest in the project's repository.

        By default a pinned digest must be one some stage has held: a stage points at it
        now, or the audit trail records a promotion or rollback that put it on a stage or
        moved it off one. A digest that only failed its gates, or a build that dev no
        longer points at, is refused (403), so a pinned spawn runs only what stages held.

            c.Lockstep.allow_any_digest = True
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
