"""Each platform's base is keyed by its own pin list only (``base.definition_key``), and a
platform without pins is refused with the command that makes them."""

from __future__ import annotations

import shutil

import pytest

from spawner.errors import LockstepError
from spawner.image.base import DEFINITION, definition_key, pin_file


@pytest.fixture
def definition(tmp_path):
    copy = tmp_path / "base"
    shutil.copytree(DEFINITION, copy)
    return copy


def test_an_arm64_pin_change_never_moves_the_amd64_key(definition):
    amd64, arm64 = definition_key(definition), definition_key(definition, platform="linux-aarch64")
    assert amd64 != arm64
    pins = definition / "packages-arm64.lock"
    pins.write_text(pins.read_text() + "# touched\n")
    assert definition_key(definition) == amd64
    assert definition_key(definition, platform="linux-aarch64") != arm64
    (definition / "packages.lock").write_text("# other amd64 pins\n")
    assert definition_key(definition) != amd64


def test_a_platform_without_pins_is_refused_with_the_fix(definition):
    (definition / "packages-arm64.lock").unlink()
    with pytest.raises(LockstepError, match=r"lock\.sh arm64"):
        pin_file(definition, "linux-aarch64")
    with pytest.raises(LockstepError, match="no base image for osx-arm64"):
        pin_file(definition, "osx-arm64")
    assert pin_file(definition, "linux-64").name == "packages.lock"
