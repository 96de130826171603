"""c.Lockstep.* settings: validation returns the value, config files are read."""

import pytest
from traitlets import TraitError
from traitlets.config import Config

from spawner.errors import LockstepError
from spawner.settings import Lockstep, load_settings


def test_channel_urls_validated_and_normalised():
    s = Lockstep(channel_urls={"conda-forge": "file:///srv/ch/"})
    assert s.channel_urls == {"conda-forge": "file:///srv/ch"}
    with pytest.raises(TraitError, match="is not a URL; use https://, http:// or file://"):
        Lockstep(channel_urls={"conda-forge": "/srv/ch"})


def test_stages_must_be_distinct():
    assert Lockstep(stages=["a", "b"]).stages == ["a", "b"]
    with pytest.raises(TraitError, match="each once"):
        Lockstep(stages=["dev", "dev"])


def test_config_file_is_read(tmp_path, monkeypatch):
    cfg = tmp_path / "lockstep_config.py"
    cfg.write_text("c.Lockstep.registry = 'reg.example.com/ds'\n")
    monkeypatch.delenv("LOCKSTEP_CONFIG", raising=False)
    assert load_settings(str(cfg)).registry == "reg.example.com/ds"
    over = Config({"Lockstep": {"registry": "other:5000"}})
    assert load_settings(str(cfg), over).registry == "other:5000"


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(LockstepError, match="does not exist"):
        load_settings(str(tmp_path / "nope.py"))


def test_every_option_has_help_with_an_example():
    for name, trait in Lockstep.class_traits(config=True).items():
        assert trait.help and "c.Lockstep." in trait.help, name
