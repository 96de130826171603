"""What a solve may use: channels, mirrors, platforms, virtual packages, PyPI.

A mixin of ``spawner.settings.Lockstep``: these traits are ``c.Lockstep.*``. Every option
carries help text with an example; validators return the value. No I/O.
"""

from __future__ import annotations

from traitlets import Bool, Dict, HasTraits, List, TraitError, Unicode, validate


class ChannelsSettings(HasTraits):
    """``c.Lockstep`` options:
    what a solve may use: channels, mirrors, platforms, virtual packages, PyPI."""

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
        ["jupyterhub-singleuser", "ipykernel", "nbclient", "jupyterlab"],
        help="""
        Packages ``lockstep lock`` adds so the image can serve a notebook for JupyterHub
        and run the project's notebooks headless (promotion gates, jobs).

        A package the spec already names is left as the spec has it. ``jupyterlab`` is
        what people land in: ``jupyterhub-singleuser`` opens ``/lab`` when the image has
        it and keeps its own landing page when it has not, so dropping it is safe (a
        smaller image, no JupyterLab). It comes last so the layers of the packages before
        it stay shared with images that leave it out (``c.Lockstep.layer_order``).

            c.Lockstep.server_packages = ["jupyterhub-singleuser>=5", "ipykernel", "nbclient"]
        """,
    ).tag(config=True)

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
        wheel or a conda package. When on, the sdist is locked (URL and sha256), and
        ``lockstep install``/``build`` build it into a wheel in the build sandbox (no
        network: its build backend, e.g. setuptools or flit_core, must be in the locked
        environment), recording the wheel's sha256 in its ``LOCKSTEP_BUILT.json``.

            c.Lockstep.pip_allow_sdists = True
        """,
    ).tag(config=True)
