"""The hub image's offline channels: the jupyter set plus the hub's wheels, and lockstep.

Usage::

    python tests/channel/hub.py --cached            # print the hub channel (build it if missing)
    python tests/channel/hub.py --lockstep SRC      # package the checkout SRC; print its channel

The **hub channel** is the ``--jupyter`` channel (:mod:`.build`) plus every wheel of
``hub-wheels.lock`` (KubeSpawner, oauthenticator, pycurl, httpx, database drivers) converted
the same way (:mod:`.wheel_convert`). It is cached under ``~/.cache/lockstep/channels/``
as ``hub-<sha>``, keyed by every input of the jupyter channel plus ``hub-wheels.lock`` and
this module, so the jupyter channel's own key (and the locks that name it) never move when
the hub's wheels do.

The **lockstep channel** holds one package, lockstep itself, built from a checkout
(:mod:`.lockstep_pkg`). It is keyed by the package's own bytes (``lockstep-<sha>``), so two
checkouts of the same source give the same channel folder, hence the same lock.

Guarantees: the same inputs give byte-identical archives; a channel folder is complete or
absent (built in a temporary sibling and renamed into place). rattler runs only in a
subprocess (:func:`.build.index_channel`).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make this folder the `channel` package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import channel  # noqa: F401

    __package__ = "channel"

from .build import CHANNELS_DIR, build_channel, cache_key, cached_dir, index_channel
from .wheel_convert import convert_and_write, wheel_meta
from .wheels import CACHE_DIR, LOCK_FILE, ensure_wheels, parse_lock

HUB_LOCK_FILE = Path(__file__).with_name("hub-wheels.lock")


def hub_key() -> str:
    """``hub-<sha>``: the jupyter channel's key, ``hub-wheels.lock`` and this module."""
    digest = hashlib.sha256(cache_key(True).encode())
    for path in (HUB_LOCK_FILE, Path(__file__)):
        digest.update(b"\0" + path.read_bytes())
    return f"hub-{digest.hexdigest()[:16]}"


def build_hub_channel(out_dir: Path, wheel_cache: Path = CACHE_DIR) -> Path:
    """The jupyter channel plus the hub wheels, indexed, in ``out_dir``."""
    build_channel(out_dir, True, wheel_cache)
    pins = parse_lock(LOCK_FILE.read_text()) + parse_lock(HUB_LOCK_FILE.read_text())
    wheels = ensure_wheels(pins, wheel_cache)
    metas = {m.name: m for m in map(wheel_meta, wheels)}
    hub_files = {p.filename for p in parse_lock(HUB_LOCK_FILE.read_text())}
    for wheel in wheels:
        if wheel.name in hub_files:
            convert_and_write(wheel, metas, out_dir)
    index_channel(out_dir)
    return out_dir


def cached_hub_channel(root: Path = CHANNELS_DIR) -> Path:
    """The hub channel under ``root/hub-<sha>/``, built when missing."""
    return cached_dir(root / hub_key(), build_hub_channel)


def cached_lockstep_channel(source: Path, root: Path = CHANNELS_DIR) -> Path:
    """A channel holding lockstep packaged from the checkout ``source``.

    Keyed by the package's bytes: the same source gives the same folder, from any checkout.
    """
    from .conda_pkg import conda_bytes
    from .lockstep_pkg import lockstep_spec

    with tempfile.TemporaryDirectory(prefix="lockstep-pkg-") as work:
        spec = lockstep_spec(Path(source), Path(work))
    key = hashlib.sha256(conda_bytes(spec)).hexdigest()[:16]

    def build(tmp: Path) -> None:
        from .conda_pkg import write_conda

        write_conda(spec, tmp)
        index_channel(tmp)

    return cached_dir(root / f"lockstep-{key}", build)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--cached", action="store_true", help="the hub channel, cached")
    group.add_argument("--lockstep", metavar="SRC", type=Path, help="package this checkout")
    args = parser.parse_args(argv)
    print(cached_hub_channel() if args.cached else cached_lockstep_channel(args.lockstep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
