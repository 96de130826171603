"""The lockstep service: a JupyterHub-managed web service at ``/services/lockstep/``.

Read side (this package): the projects a hub user may use with each stage's digest, lock
hash, build time and size; the package diff between two stages or digests; the promotion
timeline as data and as an SVG picture; the user's sessions, and for admins every running
server by project and digest. Login is the hub's OAuth (browsers) or a hub API token
(``Authorization: token ...``); the identity is always the hub's.

Modules, one job each: ``config`` (``service_config(c)`` for ``jupyterhub_config.py``),
``app`` (routes, process), ``handlers`` (tornado), ``answers`` (one per route), ``source``
(reads and caches), ``images`` (registry reads per digest), ``identity`` (hub user ->
``Requester``), and the pure ``visibility``, ``views``, ``packagediff``, ``timeline``,
``svg``, ``sessionsview``, ``page``.

Write side: ``writes`` (promote, approve, reject, rollback for the authenticated hub
user, through ``spawner.promote.core``) and ``approvals`` (pending promotions to the last
stage and who may decide them). Writes are ``POST``s: API clients with a hub token, the
page with forms carrying the hub's XSRF token.
"""
