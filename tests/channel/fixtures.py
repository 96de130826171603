"""Session-scoped pytest fixtures for the offline conda channel.

``tests/conftest.py`` loads them as a plugin (``pytest_plugins``).

Both return the channel folder (use ``path.as_uri()`` as the channel URL). The build is
cached under ``~/.cache/lockstep/channels/`` keyed by its inputs, so only the first run
after a change pays for it (about 6 s without the wheels, 10 s with them from a warm
wheel cache). A missing input (no CPython 3.11.7, no ``patchelf``, no PyPI access for a
cold wheel cache) skips the test with the reason and the fix; nothing here imports
rattler.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .build import cached_channel
from .conda_pkg import BuildInputMissing


def _channel(jupyter: bool) -> Path:
    try:
        return cached_channel(jupyter)
    except BuildInputMissing as exc:
        pytest.skip(f"cannot build the test conda channel: {exc}")


@pytest.fixture(scope="session")
def tiny_channel() -> Path:
    """The channel without the wheel set: tiny fixtures, python, python_abi, pip."""
    return _channel(jupyter=False)


@pytest.fixture(scope="session")
def jupyter_channel() -> Path:
    """The full channel: everything in ``tiny_channel`` plus the jupyter wheel set."""
    return _channel(jupyter=True)


@pytest.fixture(scope="session")
def pypi_index(tmp_path_factory):
    """A local PEP 503 index of pinned real wheels (``pypi_index.PINS``) on 127.0.0.1.

    The wheels are downloaded once into ``~/.cache/lockstep/wheels/index-<key>/``; a cold
    cache without PyPI access skips the test with the reason.
    """
    from .pypi_index import IndexUnavailable, build_index, serve_index

    try:
        root = build_index(tmp_path_factory.mktemp("pypi-index"))
    except IndexUnavailable as exc:
        pytest.skip(f"cannot fetch the pinned test wheels once (cache is cold): {exc}")
    with serve_index(root) as url:
        yield url
