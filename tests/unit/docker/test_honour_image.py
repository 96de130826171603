"""``_ensure_image`` honours ``pull_policy`` and hands back the image's config labels from
the inspect that found it (so the landing reads the JupyterLab label without another
Docker call); after a pull one inspect reads them; ``skip`` touches no image (None)."""

from __future__ import annotations

import pytest

from spawner.docker import honour
from spawner.labels import JUPYTERLAB

REF = "127.0.0.1:5000/lockstep/p@sha256:" + "e" * 64
LABELS = {JUPYTERLAB: "4.2.5"}


class Refused(Exception):
    pass


class Spawner(honour.HonourParentTraits):
    def __init__(self, policy: str, present: bool):
        self.pull_policy, self.present, self.client, self.calls = policy, present, None, []

    async def _pull(self, reference):
        self.calls.append("pull")
        self.present = True

    def _refuse(self, message, status, step):
        raise Refused(message)


@pytest.fixture
def spawner_for(monkeypatch):
    def make(policy: str, present: bool) -> Spawner:
        spawner = Spawner(policy, present)

        def image_labels(client, reference):
            spawner.calls.append("inspect")
            return dict(LABELS) if spawner.present else None

        monkeypatch.setattr(honour.dockerops, "image_labels", image_labels)
        return spawner

    return make


@pytest.mark.parametrize(
    ("policy", "present", "calls", "labels"),
    [
        ("ifnotpresent", True, ["inspect"], LABELS),
        ("ifnotpresent", False, ["inspect", "pull", "inspect"], LABELS),
        ("always", True, ["pull", "inspect"], LABELS),
        ("never", True, ["inspect"], LABELS),
        ("skip", False, [], None),
    ],
)
async def test_labels_come_from_the_inspect_that_finds_the_image(
    spawner_for, policy, present, calls, labels
):
    spawner = spawner_for(policy, present)
    assert await spawner._ensure_image(REF) == labels
    assert spawner.calls == calls


async def test_never_refuses_a_missing_image_without_pulling(spawner_for):
    spawner = spawner_for("never", False)
    with pytest.raises(Refused, match="pull_policy is 'never'"):
        await spawner._ensure_image(REF)
    assert spawner.calls == ["inspect"]
