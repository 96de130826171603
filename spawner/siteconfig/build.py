"""How images are built: the sandbox and the layer rule.

A mixin of ``spawner.settings.Lockstep``: these traits are ``c.Lockstep.*``. Every option
carries help text with an example; validators return the value. No I/O.
"""

from __future__ import annotations

from traitlets import Bool, HasTraits, Integer, List, TraitError, Unicode, validate


class BuildSettings(HasTraits):
    """``c.Lockstep`` options: how images are built: the sandbox and the layer rule."""

    build_sandbox = Unicode(
        "bwrap",
        help="""
        How ``lockstep build`` runs package code (the environment's own python compiling
        bytecode): ``"bwrap"`` (bubblewrap: no network, empty environment, private user
        namespace, read-only environment, only a fresh output folder writable) or
        ``"none"``.

        ``"none"`` is UNSAFE: a package in a lock then runs code on the build host as the
        builder, with its files and credentials. Use it only where bubblewrap cannot run
        and every channel is fully trusted. It is also not reproducible for pip sdists
        (``c.Lockstep.pip_allow_sdists``): sandboxed, an sdist is built at the fixed path
        ``/build``; unsandboxed, it is built in a fresh host scratch folder, which a build
        backend may record in the wheel (``os.getcwd()``, ``__file__``), so two builds of
        one lock can give different wheels and image digests. The build says so for
        each sdist it builds unsandboxed.

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

    compile_test_bytecode = Bool(
        False,
        help="""
        Whether ``lockstep build`` also writes ``.pyc`` files for packages' own test suites
        (``tests/`` and ``test/`` folders inside ``site-packages``, e.g. ``numpy/_core/tests``).

        Off by default: notebooks almost never import them, they are about a tenth of an
        environment's Python sources (and of the build's compile time), and where one is
        imported (``numpy.test()``) Python compiles it in memory, since ``/opt/env`` is
        read-only. Turn it on to ship them compiled; the images' digests then change once.

            c.Lockstep.compile_test_bytecode = True
        """,
    ).tag(config=True)

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
