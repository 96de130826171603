"""The files lockstep adds to every project image's env so that saved notebooks record
their environment: a Jupyter server extension and the config that enables it.

* ``/opt/env/lib/pythonX.Y/site-packages/lockstep_notebook_meta.py``: the bytes of
  ``spawner/image/notebookhook.py`` (stdlib only; see that module);
* ``/opt/env/etc/jupyter/jupyter_server_config.d/lockstep.json``: enables it as a server
  extension. ``{sys.prefix}/etc/jupyter`` is on every Jupyter server's config path
  (``jupyter --paths``: the env's own config, below the user's and above the system's), so
  the image's server loads it with no user config, and a user may still turn it off in
  ``~/.jupyter`` (``"lockstep_notebook_meta": false``).

The build puts these entries into the image's last layer (the lockstep-owned one holding
the normalised ``conda-meta``); ``FINGERPRINT`` is part of the image key, so a change of
these files gives a new image key, and the same lockstep gives the same bytes: two builds
of one lock still give one digest.

Pure: only reads its own sibling file at import; no clock, no host paths.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from spawner.image.envlayout import LAYER_ROOT
from spawner.image.tarlayer import Entry

MODULE = "lockstep_notebook_meta"
SOURCE = (Path(__file__).resolve().parent / "notebookhook.py").read_bytes()
CONFIG_PATH = "etc/jupyter/jupyter_server_config.d/lockstep.json"
CONFIG = (
    json.dumps(
        {"ServerApp": {"jpserver_extensions": {MODULE: True}}}, indent=2, sort_keys=True
    ).encode()
    + b"\n"
)
FINGERPRINT = hashlib.sha256(SOURCE + b"\0" + CONFIG).hexdigest()[:16]


def module_path(python: str) -> str:
    """Where the module lands below the env prefix for python ``3.11``."""
    return f"lib/python{python}/site-packages/{MODULE}.py"


def hook_entries(python: str | None) -> list[Entry]:
    """Layer entries (below ``opt/env``) of the hook for an env with python ``python``;
    none for an env without python (it has no Jupyter server to hook)."""
    if not python:
        return []
    return [
        Entry(f"{LAYER_ROOT}/{CONFIG_PATH}", "file", 0o644, data=CONFIG),
        Entry(f"{LAYER_ROOT}/{module_path(python)}", "file", 0o644, data=SOURCE),
    ]
