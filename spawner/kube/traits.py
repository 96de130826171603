"""The Kubernetes spawner's own options, as traits: ``c.LockstepKubeSpawner.*``.

Kept apart from ``kubespawner`` so the glue stays short (the twin of
``spawner.docker.traits``). Every option has help text with an example. Hardening can only
be relaxed here, by the admin: nothing a user sends in ``user_options`` reaches these
traits. It must not read the cluster or render anything.
"""

from __future__ import annotations

from traitlets import Bool, Dict, Enum, Float, HasTraits, List, Unicode, validate

from spawner.kube.hardening import WEAKENING_TRAITS


class LockstepKubeTraits(HasTraits):
    """Options of ``LockstepKubeSpawner`` (mixed into it)."""

    data_volumes = Dict(
        help="""
        The Kubernetes volume behind each project data mount, by ``"<project>/<mount>"``
        or just ``"<mount>"`` (the first wins).

        Each value is exactly one of ``{"pvc": CLAIM}``, ``{"nfs": {"server": HOST,
        "path": PATH}}`` or ``{"hostPath": PATH}`` (single-node clusters only). The volume
        and the mount are both read-only. A project whose data mount is not mapped is
        refused with this option named.

            c.LockstepKubeSpawner.data_volumes = {
                "forecast/sales": {"pvc": "sales-data"},
                "imagenet": {"nfs": {"server": "nfs.internal", "path": "/exports/imagenet"}},
            }
        """,
    ).tag(config=True)

    workspace_claim_template = Unicode(
        "lockstep-ws-{project}",
        help="""
        Name of each project's shared workspace claim (ReadWriteMany), ``{project}`` filled in.

        The spawner creates it (``workspace.size`` from project.yaml) when it is missing.

            c.LockstepKubeSpawner.workspace_claim_template = "ws-{project}"
        """,
    ).tag(config=True)

    workspace_storage_class = Unicode(
        "",
        help="""
        StorageClass for project workspaces; it must offer ReadWriteMany (NFS, CephFS,
        EFS, Filestore...). Empty means the cluster default.

            c.LockstepKubeSpawner.workspace_storage_class = "nfs-client"
        """,
    ).tag(config=True)

    home_storage = Enum(
        ["pvc", "emptyDir"],
        "pvc",
        help="""
        Where ``/home/jovyan`` lives: a per-user, per-project claim (``pvc``, kept across
        servers) or an ``emptyDir`` (gone when the server stops).

            c.LockstepKubeSpawner.home_storage = "emptyDir"
        """,
    ).tag(config=True)

    home_size = Unicode(
        "10Gi",
        help="""
        Size of each home claim when ``home_storage`` is ``pvc``.

            c.LockstepKubeSpawner.home_size = "20Gi"
        """,
    ).tag(config=True)

    home_storage_class = Unicode(
        "",
        help="""
        StorageClass of home claims (ReadWriteOnce is enough). Empty: the cluster default.

            c.LockstepKubeSpawner.home_storage_class = "fast-ssd"
        """,
    ).tag(config=True)

    tmp_medium = Enum(
        ["", "Memory"],
        "",
        help="""
        ``emptyDir`` medium of ``/tmp``: node disk (``""``) or RAM (``"Memory"``, counted in
        the pod's memory limit).

            c.LockstepKubeSpawner.tmp_medium = "Memory"
        """,
    ).tag(config=True)

    gpu_placement = Dict(
        help="""
        Node selector and tolerations for pods that ask for GPUs, by GPU ``type`` from
        project.yaml, then by vendor (``nvidia``/``amd``), then ``""`` for any GPU.

        A toleration for the vendor's resource taint (``nvidia.com/gpu`` or
        ``amd.com/gpu``, effect NoSchedule) is always added.

            c.LockstepKubeSpawner.gpu_placement = {
                "a100": {"node_selector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
                         "tolerations": [{"key": "dedicated", "operator": "Equal",
                                          "value": "gpu", "effect": "NoSchedule"}]},
            }
        """,
    ).tag(config=True)

    cuda_affinity = Bool(
        True,
        help="""
        Schedule a GPU pod whose project states ``gpu: {cuda: ">=X.Y"}`` only on nodes whose
        NVIDIA driver supports that CUDA, by required node affinity on the labels NVIDIA
        GPU feature discovery sets (``nvidia.com/cuda.runtime.major``/``minor``). Turn it
        off only on clusters without GPU feature discovery (such pods would never schedule).

            c.LockstepKubeSpawner.cuda_affinity = False
        """,
    ).tag(config=True)

    runtime_classes = Dict(
        {"gvisor": "gvisor", "kata": "kata"},
        help="""
        RuntimeClass name for each ``isolation`` of project.yaml other than ``runc``.

        The RuntimeClass must exist in the cluster (see docs/kubernetes.md).

            c.LockstepKubeSpawner.runtime_classes = {"gvisor": "gvisor", "kata": "kata-qemu"}
        """,
    ).tag(config=True)

    cpu_request_fraction = Float(
        1.0,
        help="""
        CPU request as a fraction of the project's CPU limit (1.0: request what may be used).

            c.LockstepKubeSpawner.cpu_request_fraction = 0.25
        """,
    ).tag(config=True)

    memory_request_fraction = Float(
        1.0,
        help="""
        Memory request as a fraction of the project's memory limit.

            c.LockstepKubeSpawner.memory_request_fraction = 0.5
        """,
    ).tag(config=True)

    hardening_exceptions = List(
        Unicode(),
        help=f"""
        KubeSpawner traits allowed to weaken the pod's hardening (admin config only).

        lockstep refuses, when the hub starts, a KubeSpawner trait that would make the pod
        privileged, root, able to gain privileges or capabilities, share host namespaces,
        mount host paths or mount the service-account token. Name a trait here to accept
        that risk for it (a warning is logged at each start). Allowed names:
        {", ".join(WEAKENING_TRAITS)}.

        The check at start is ``spawner.kube.spawner.check_config(c)``, the last line of
        ``jupyterhub_config.py`` (the chart's config ends with it; a site's own file should
        too): JupyterHub offers a spawner no hook at hub start, so without it a weakening
        trait is refused only when a spawner is created or a server spawns.

            # Zero to JupyterHub's cloud-metadata block is a root init container with
            # NET_ADMIN that exits before the user's code runs:
            c.LockstepKubeSpawner.hardening_exceptions = ["init_containers"]
            ...
            from spawner.kube.spawner import check_config
            check_config(c)  # the last line of jupyterhub_config.py
        """,
    ).tag(config=True)

    @validate("hardening_exceptions")
    def _validate_hardening_exceptions(self, proposal):
        value = list(proposal["value"])
        unknown = sorted(set(value) - set(WEAKENING_TRAITS))
        if unknown:
            raise ValueError(f"hardening_exceptions: unknown trait(s) {unknown}; allowed: "
                             f"{list(WEAKENING_TRAITS)}")
        return value
