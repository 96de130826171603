"""Which shared data a project may mount, from where, and where it lands.

A mixin of ``spawner.settings.Lockstep``: these traits are ``c.Lockstep.*``. Every option
carries help text with an example; validators return the value. No I/O.
"""

from __future__ import annotations

from traitlets import Dict, HasTraits, List, TraitError, Unicode, validate


class DataSettings(HasTraits):
    """``c.Lockstep`` options:
    which shared data a project may mount, from where, and where it lands."""

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
