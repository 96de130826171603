"""``lockstep prepull`` refusals (before any registry read) and the promotion hook switch."""

from __future__ import annotations

import pytest
from traitlets.config import Config

from spawner.commands.prepull import stage_pointers
from spawner.errors import LockstepError
from spawner.promote.prepull import hooks
from spawner.settings import Lockstep


@pytest.fixture
def settings(tmp_path) -> Lockstep:
    (tmp_path / "forecast").mkdir()
    (tmp_path / "forecast" / "project.yaml").write_text("name: forecast\n")
    config = Config()
    config.Lockstep.environments_dir = str(tmp_path)
    config.Lockstep.registry = "127.0.0.1:1/none"  # nothing answers: a read would fail
    return Lockstep(config=config)


def test_unknown_project_and_stage_are_named_with_what_exists(settings):
    with pytest.raises(LockstepError, match=r"no project vision .*\(known: forecast\)"):
        stage_pointers(settings, ["vision"])
    with pytest.raises(LockstepError, match=r"unknown stage 'staging'; this site's stages"):
        stage_pointers(settings, ["forecast"], ["staging"])


def test_prepull_hook_only_when_asked(settings):
    assert settings.prepull_on_promote is False
    assert hooks(settings) == []
    settings.prepull_on_promote = True
    assert [gate.name for gate in hooks(settings)] == ["prepull"]
