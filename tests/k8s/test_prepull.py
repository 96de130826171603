"""Stage pointers -> z2jh's pre-puller (``spawner.kube.prepull``), rendered by the real z2jh
chart: every stage digest is pulled by the continuous DaemonSet and the upgrade hook, and a
(fake) promotion moves the DaemonSet to the promoted digest."""

from __future__ import annotations

import pytest
import yaml

from spawner.kube.prepull import entry_key, z2jh_values
from tests.k8s.k8s_helpers import fake_image, validate_strictly
from tests.k8s.z2jh_hub import OVERLAY, Z2JH, render_z2jh

pytestmark = pytest.mark.skipif(not (Z2JH / "Chart.yaml").exists(),
                                reason=f"the z2jh chart is not at {Z2JH}")


def pulled(docs: list[dict], name: str) -> set[str]:
    (ds,) = [d for d in docs if d["kind"] == "DaemonSet" and d["metadata"]["name"] == name]
    return {c["image"] for c in ds["spec"]["template"]["spec"]["initContainers"]}


def render_with(helm, tmp_path, pointers) -> list[dict]:
    path = tmp_path / "prepull.yaml"
    path.write_text(yaml.safe_dump(z2jh_values(pointers)))
    return render_z2jh(helm, OVERLAY, path)


def test_promotion_updates_the_pre_puller(helm, tmp_path):
    before = {"forecast": {s: fake_image("forecast", s) for s in ("dev", "qa", "prod")},
              "vision": {"prod": fake_image("vision", "prod")}}
    docs = render_with(helm, tmp_path, before)
    validate_strictly(docs)
    for daemonset in ("continuous-image-puller", "hook-image-puller"):
        images = pulled(docs, daemonset)
        assert {i.reference for s in before.values() for i in s.values()} <= images

    after = {**before, "forecast": {**before["forecast"], "prod": before["forecast"]["qa"]}}
    docs = render_with(helm, tmp_path, after)  # lockstep promote forecast --to prod
    validate_strictly(docs)
    images = pulled(docs, "continuous-image-puller")
    assert fake_image("forecast", "prod").reference not in images  # the old prod digest
    assert fake_image("forecast", "qa").reference in images
    assert z2jh_values(after)["prePuller"]["extraImages"]["lockstep-forecast-prod"] == {
        "name": fake_image("forecast", "qa").repository + "@sha256",
        "tag": fake_image("forecast", "qa").digest.split(":")[1]}


def test_values_are_deterministic_and_named_safely():
    pointers = {"Big_Project": {"prod": fake_image("x", "prod")}}
    assert z2jh_values(pointers) == z2jh_values(dict(pointers))
    assert list(z2jh_values(pointers)["prePuller"]["extraImages"]) == ["lockstep-big-project-prod"]
    with pytest.raises(ValueError, match="longer than"):
        entry_key("p" * 60, "prod")
