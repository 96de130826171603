"""Model services on Kubernetes: the Deployment, Service and NetworkPolicy that
``lockstep deploy --render k8s`` writes validate strictly on the oldest and newest
Kubernetes the chart supports, and carry valid labels only."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from spawner.commands.deploy import _NoAliases, kube_options
from spawner.kube.render import KubeOptions
from spawner.services.spec import kube_objects, service_launch_spec
from spawner.settings import Lockstep
from tests.k8s.k8s_helpers import K8S_VERSIONS, LABEL_VALUE_RE, PROJECTS, fake_image

SERVED = sorted(name for name, p in PROJECTS.items() if p.service is not None)
OPTIONS = KubeOptions(data_volumes={"sales": {"pvc": "sales-data"}},
                      image_pull_secrets=("regcred",))


def objects(name: str, **kw) -> list[dict]:
    project = PROJECTS[name]
    spec = service_launch_spec(project=project, image=fake_image(name, "prod"), stage="prod",
                               data_sources={m.name: "kubernetes" for m in project.data})
    return kube_objects(spec, service=project.service, options=OPTIONS, namespace="models", **kw)


def test_the_example_projects_include_a_served_one():
    assert "forecast" in SERVED


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", SERVED)
def test_service_objects_validate_strictly(name, version):
    for obj in objects(name):
        # what `--render k8s` writes, read back: YAML without anchors
        doc = yaml.safe_load(yaml.dump(obj, Dumper=_NoAliases))
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']} for k8s {version}: {exc.message} at {list(exc.path)}")


@pytest.mark.parametrize("name", SERVED)
def test_labels_are_valid_and_the_image_is_pinned(name):
    for obj in objects(name):
        metas = [obj["metadata"]]
        if obj["kind"] == "Deployment":
            metas.append(obj["spec"]["template"]["metadata"])
            image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
            assert "@sha256:" in image and ":prod" not in image
        for meta in metas:
            assert all(LABEL_VALUE_RE.match(v) and len(v) <= 63
                       for v in meta["labels"].values()), meta["labels"]


def test_ingress_peers_can_be_narrowed():
    policy = objects("forecast", ingress_from=(
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}},))[2]
    kubernetes_validate.validate(policy, K8S_VERSIONS[-1], strict=True)
    assert policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]


def test_kube_options_come_from_the_sites_kube_spawner_config():
    from traitlets.config import Config

    config = Config()
    config.LockstepKubeSpawner.data_volumes = {"forecast/sales": {"nfs": {
        "server": "nfs.internal", "path": "/exports/sales"}}}
    config.LockstepKubeSpawner.image_pull_secrets = [{"name": "regcred"}]
    options = kube_options(Lockstep(config=config))
    assert options.data_volumes["forecast/sales"]["nfs"]["server"] == "nfs.internal"
    assert options.image_pull_secrets == ("regcred",)
    assert kube_options(Lockstep()) == KubeOptions()
