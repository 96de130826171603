"""What differs between the JupyterHub versions lockstep supports (5.x and 6.x), in one place.

Guarantees: ``SpawnException`` has JupyterHub 6's signature and attributes on both versions
(``SpawnException(message, *, reason, log_message="", message_html="", status_code=400)``),
and the user sees ``message`` on the spawn page on both: JupyterHub 6 reads the exception's
fields, JupyterHub 5 reads ``jupyterhub_message`` / ``jupyterhub_html_message``, which are
set here too. The spawners import it from here, never from ``jupyterhub.spawner``.

Must not: import anything but JupyterHub and tornado (both spawners and the Kubernetes-only
install, ``lockstep[kube]``, import it), or change behaviour on JupyterHub 6.
"""

from __future__ import annotations

from tornado import web

try:  # JupyterHub >= 6.0
    from jupyterhub.spawner import SpawnException as _HubSpawnException
except ImportError:  # JupyterHub 5.x: a policy failure is an HTTPError with a message
    _HubSpawnException = None


class _SpawnException(web.HTTPError):
    """JupyterHub 6's ``SpawnException`` for JupyterHub 5: a policy failure that refuses a
    spawn with ``status_code`` and shows ``message`` (or ``message_html``) to the user."""

    # class attributes, as in JupyterHub 6: they shadow tornado's ``log_message`` property
    reason = ""
    status_code = 400
    message = ""
    message_html = ""
    log_message = ""

    def __init__(self, message: str, *, reason: str, log_message: str = "",
                 message_html: str = "", status_code: int = 400) -> None:
        self.message = message
        self.reason = reason
        self.log_message = log_message or message
        self.message_html = message_html
        self.status_code = status_code
        self.jupyterhub_message = message
        if message_html:
            self.jupyterhub_html_message = message_html
        super().__init__(status_code, "%s", self.log_message, reason=reason)


SpawnException = _HubSpawnException if _HubSpawnException is not None else _SpawnException

__all__ = ["SpawnException"]
