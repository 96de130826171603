"""The one host address a Docker hub binds its API to: the gateway of an empty lockstep bridge.

Servers of every project must reach the Hub API, and nothing else should: not the LAN,
not the internet, not other programs' containers. JupyterHub binds one address. Binding
``0.0.0.0`` (what DockerSpawner's docs suggest) puts the login page and the REST API on
every interface of the host. Binding ``127.0.0.1`` is unreachable from containers.

``hub_address()`` makes (once; it is kept) a lockstep network ``lockstep--hub`` with no
containers, ``--internal``, no icc and no IPv6, and returns its bridge's gateway address.
That address is the host's own, on a lockstep bridge (``lsbr-...``), so:

* containers of every project reach it through their own gateway (the host routes it
  locally), and lockstep's firewall admits the Hub's port there, as on every lockstep
  gateway, and nowhere else (``spawner.docker.firewall``);
* nothing off the host reaches it (a private address on a bridge with no uplink);
  the proxy and the Hub's services on the host reach it directly.

Use it in ``jupyterhub_config.py``::

    from spawner.docker.hubconfig import configure
    from spawner.docker.hubnet import hub_address
    configure(c, ..., hub_ip=hub_address())

This module does I/O through ``spawner.docker.engine`` only; it never removes the network
(``docker network rm lockstep--hub`` after the hub has stopped does).
"""

from __future__ import annotations

from spawner.docker import engine
from spawner.docker.firewall import gateway_of
from spawner.errors import LockstepError

HUB_NETWORK = "lockstep--hub"  # "-hub" is no project name: no clash with project "hub"


def _key(name: str) -> str:
    """The network's "project" (labels, bridge name): no project name starts with "_"."""
    return "_hub" if name == HUB_NETWORK else f"_{name}"


def hub_address(name: str = HUB_NETWORK, *, client=None) -> str:
    """The gateway address of ``name`` (created when missing), for ``hub_bind_url``."""
    api = client or engine.connect(timeout=60)
    try:
        network = engine.ensure_network(api, _key(name), name, internal=True)
    finally:
        if client is None:
            api.close()
    address = gateway_of(network)
    if not address:
        raise LockstepError(f"Docker network {name!r} has no gateway address to bind the Hub "
                            f"to; remove it (`docker network rm {name}`) and start again")
    return address
