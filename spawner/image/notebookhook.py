"""Jupyter server extension that records the environment in every saved notebook.

This file is copied, byte for byte, into every project image that ``lockstep build``
writes, as ``/opt/env/lib/pythonX.Y/site-packages/lockstep_notebook_meta.py``, and
``/opt/env/etc/jupyter/jupyter_server_config.d/lockstep.json`` enables it
(``spawner.image.jupyterhook``). On each save of a notebook through the server's contents
API (JupyterLab, Notebook, the REST API), it writes ``metadata.lockstep``::

    {"project": "forecast", "stage": "qa", "digest": "sha256:...",
     "image": "127.0.0.1:5000/lockstep/forecast@sha256:...", "lock_hash": "sha256:..."}

from the variables the spawners set in every server (``LOCKSTEP_PROJECT``,
``LOCKSTEP_STAGE``, ``LOCKSTEP_IMAGE``, ``LOCKSTEP_LOCK_HASH``: ``launch.spec``), so the
lockstep service can reopen the notebook on the exact image it was saved with.

Guarantees: standard library only (it runs in the project's python, whatever that has);
it never fails a save: a server started without lockstep's variables (``docker run`` by
hand) or an image reference without a digest leaves the notebook untouched; files that
are not notebooks are never changed. It must not import lockstep, read files, or use the
network.
"""

import os
import re

KEY = "lockstep"
DIGEST_RE = re.compile(r"@(sha256:[0-9a-f]{64})$")


def environment_record(environ):
    """``metadata.lockstep`` for a server with ``environ``; None when it is not a lockstep
    server (no ``LOCKSTEP_PROJECT``, or ``LOCKSTEP_IMAGE`` not pinned by digest)."""
    project = environ.get("LOCKSTEP_PROJECT", "")
    image = environ.get("LOCKSTEP_IMAGE", "")
    found = DIGEST_RE.search(image)
    if not project or not found:
        return None
    return {
        "project": project,
        "stage": environ.get("LOCKSTEP_STAGE", ""),
        "digest": found.group(1),
        "image": image,
        "lock_hash": environ.get("LOCKSTEP_LOCK_HASH", ""),
    }


def stamp(model, environ):
    """Write the record into a notebook ``model`` (a contents-API save); returns whether
    it did. Other models, and models without content, are left as they are."""
    if not isinstance(model, dict) or model.get("type") != "notebook":
        return False
    content = model.get("content")
    record = environment_record(environ)
    if not isinstance(content, dict) or record is None:
        return False
    metadata = content.get("metadata")
    if not isinstance(metadata, dict):
        metadata = content["metadata"] = {}
    metadata[KEY] = record
    return True


def pre_save_hook(model=None, path="", contents_manager=None, **kwargs):
    """The contents manager's pre-save hook (``register_pre_save_hook``)."""
    stamp(model, os.environ)


def _jupyter_server_extension_points():
    return [{"module": "lockstep_notebook_meta"}]


def _load_jupyter_server_extension(serverapp):
    manager = serverapp.contents_manager
    if hasattr(manager, "register_pre_save_hook"):
        manager.register_pre_save_hook(pre_save_hook)
    else:  # jupyter_server < 2: the single hook trait
        manager.pre_save_hook = pre_save_hook
    serverapp.log.info("lockstep: notebooks record their environment in metadata.lockstep")
