"""The hub channel's inputs: its own cache key, and wheels that extend the jupyter set."""

from __future__ import annotations

from tests.channel.build import cache_key
from tests.channel.hub import HUB_LOCK_FILE, hub_key
from tests.channel.lockstep_pkg import BUILD_PINS, SOURCES
from tests.channel.wheels import LOCK_FILE, parse_lock


def test_hub_key_is_its_own_and_leaves_the_jupyter_key_alone():
    assert hub_key().startswith("hub-") and hub_key() == hub_key()
    assert hub_key() not in (cache_key(True), cache_key(False))


def test_hub_wheels_only_add_packages_the_jupyter_set_lacks():
    jupyter = {p.name.lower().replace("_", "-") for p in parse_lock(LOCK_FILE.read_text())}
    hub = [p.name.lower().replace("_", "-") for p in parse_lock(HUB_LOCK_FILE.read_text())]
    assert not jupyter & set(hub) and len(hub) == len(set(hub))
    assert {"jupyterhub-kubespawner", "oauthenticator", "pycurl"} <= set(hub)
    assert "httpx" in jupyter  # lockstep's own; JupyterLab's set carries it too


def test_lockstep_package_inputs_are_pinned():
    assert all("==" in pin for pin in BUILD_PINS)
    assert SOURCES == ("pyproject.toml", "README.md", "spawner")
