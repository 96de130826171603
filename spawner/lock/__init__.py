"""Locking and installing project environments (see each module for its contract).

The API other parts of lockstep call:

* ``install_lock(lockfile, prefix, *, platform, target_prefix, mirrors, cache_dir)``
  -> ``InstallResult`` (``install.py``): what the image builder stages ``/opt/env`` with.
* ``lock_environment(target, inputs)`` -> ``LockResult`` and ``check_lock(target, inputs)``
  -> ``Freshness``, with ``LockInputs.from_settings(settings)`` (``locking.py``).
* ``build_report(lockfile)`` -> ``LockReport`` (``report.py``).

Importing this package is cheap: conda-lock is imported when first used, rattler never
(it runs in ``python -m spawner.lock.worker``).
"""

from spawner.lock.freshness import Freshness
from spawner.lock.install import InstallResult, install_lock
from spawner.lock.locking import LockInputs, LockResult, check_lock, lock_environment
from spawner.lock.report import LockReport, build_report

__all__ = [
    "Freshness",
    "InstallResult",
    "LockInputs",
    "LockReport",
    "LockResult",
    "build_report",
    "check_lock",
    "install_lock",
    "lock_environment",
]
