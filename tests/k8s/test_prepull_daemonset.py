"""The standalone chart's pre-puller: a DaemonSet from the stage pointers, strictly valid."""

from __future__ import annotations

from spawner.kube.prepull import daemonset, entry_key
from tests.k8s.k8s_helpers import fake_image, validate_strictly


def pointers():
    return {"forecast": {s: fake_image("forecast", s) for s in ("dev", "qa", "prod")},
            "vision": {"prod": fake_image("vision", "prod")}}


def test_daemonset_pulls_every_stage_digest_and_is_strictly_valid():
    doc = daemonset(pointers(), namespace="lockstep", pull_secrets=("regcred",))
    validate_strictly([doc])
    pod = doc["spec"]["template"]["spec"]
    images = {c["name"]: c["image"] for c in pod["initContainers"]}
    assert images == {f"image-pull-{entry_key(p, s)}": ref.reference
                      for p, stages in pointers().items() for s, ref in stages.items()}
    assert all("@sha256:" in image for image in images.values())
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    for container in [*pod["initContainers"], *pod["containers"]]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False


def test_a_promotion_changes_only_the_promoted_entry():
    before = pointers()
    after = {**before, "forecast": {**before["forecast"], "prod": before["forecast"]["qa"]}}
    old = daemonset(before, namespace="lockstep")["spec"]["template"]["spec"]["initContainers"]
    new = daemonset(after, namespace="lockstep")["spec"]["template"]["spec"]["initContainers"]
    changed = [(a["name"], b["image"]) for a, b in zip(old, new, strict=True) if a != b]
    assert changed == [("image-pull-lockstep-forecast-prod", before["forecast"]["qa"].reference)]
    assert daemonset(after, namespace="lockstep") == daemonset(dict(after), namespace="lockstep")
