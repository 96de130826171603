"""The local registry's generated config (no daemon, no process)."""

from pathlib import Path

import yaml

from spawner.image.localregistry import render_config, status


def test_config_enables_delete_and_listens_on_loopback():
    config = yaml.safe_load(
        render_config(storage=Path("/data/registry/storage"), addr="127.0.0.1:5000")
    )
    assert config["storage"]["filesystem"]["rootdirectory"] == "/data/registry/storage"
    assert config["storage"]["delete"]["enabled"] is True
    assert config["http"]["addr"] == "127.0.0.1:5000"


def test_status_without_pidfile(tmp_path):
    state = status(tmp_path, "127.0.0.1:1")
    assert (state.running, state.pid, state.managed) == (False, None, False)
