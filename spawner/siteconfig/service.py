"""What the lockstep service (``spawner.hubservice``) shows admins.

A mixin of ``spawner.settings.Lockstep``: these traits are ``c.Lockstep.*``, and reach the
service with the other ``c.Lockstep`` values (``spawner.hubservice.config``). Every option
carries help text with an example; validators return the value. No I/O.
"""

from __future__ import annotations

from traitlets import Float, HasTraits, TraitError, validate


class ServiceSettings(HasTraits):
    """``c.Lockstep`` options of the lockstep service's page and API."""

    idle_after = Float(
        3600.0,
        help="""
        Seconds without activity after which the lockstep service lists a running server
        as idle (admins only, on the page and in ``GET /api/sessions``, most idle first).

        Activity is the hub's ``last_activity`` of each server (what
        ``jupyterhub-idle-culler`` culls on). This only shows idle servers; stopping them is
        the culler's job (``spawner.docker.hubconfig.configure(idle_timeout=...)``, or
        z2jh's ``cull.timeout``): set it below the culler's timeout to see servers before
        they are culled.

            c.Lockstep.idle_after = 1800
        """,
    ).tag(config=True)

    @validate("idle_after")
    def _validate_idle_after(self, proposal):
        value = float(proposal["value"])
        if value <= 0:
            raise TraitError(
                f"c.Lockstep.idle_after = {value!r} must be a number of seconds "
                "above 0, e.g. c.Lockstep.idle_after = 3600"
            )
        return value
