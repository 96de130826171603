"""The "unknown stage" message: written once (settings.unknown_stage), used by every caller."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from spawner.settings import unknown_stage

SPAWNER = Path(__file__).resolve().parents[2] / "spawner"


def test_the_message_names_the_stage_the_choices_and_the_setting():
    assert unknown_stage("prdo", ["dev", "qa", "prod"]) == (
        "unknown stage 'prdo'; this site's stages are dev, qa, prod (c.Lockstep.stages)")
    assert unknown_stage("x", ("dev",)).endswith("stages are dev (c.Lockstep.stages)")


def test_no_module_writes_its_own_copy():
    copies = [f"{path.relative_to(SPAWNER.parent)}:{number}"
              for path in sorted(SPAWNER.rglob("*.py")) if path.name != "settings.py"
              for number, line in enumerate(path.read_text().splitlines(), 1)
              if re.search(r"unknown stage|not a stage|stages are", line, re.IGNORECASE)]
    assert copies == [], "use spawner.settings.unknown_stage"


@pytest.mark.parametrize("caller", ["launch/access.py", "launch/choice.py", "docker/jobs.py",
                                    "promote/core.py"])
def test_every_caller_uses_it(caller):
    assert "unknown_stage(" in (SPAWNER / caller).read_text()
