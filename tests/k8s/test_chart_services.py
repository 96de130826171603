"""The chart deploys model services. ``lockstep deploy PROJECT --render helm-values`` writes
the chart's ``services.<project>`` value from the project's launch spec at a stage's
digest; helm 3 and 4 render it into the release namespace as objects that validate
strictly on the oldest and newest Kubernetes the chart supports, with the pod exactly as
``spawner/services.py`` rendered it. A promotion and a re-render roll the Deployment (and
nothing else), the service's labels agree with the chart's NetworkPolicies, and the CLI
resolves a real stage pointer in a real registry."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from spawner import cli
from spawner.commands.deploy import chart_kube_options, helm_values_text, kube_options
from spawner.kube.render import KubeOptions, pod_labels
from spawner.launch.spec import ImageRef, build_launch_spec
from spawner.services import spec as services
from spawner.settings import Lockstep, load_settings
from tests.k8s.hubload import load_hub, matches_selector
from tests.k8s.k8s_helpers import (
    CHART,
    EXAMPLES,
    PROJECTS,
    ROOT,
    by_kind,
    fake_image,
    find,
    helm_template,
    validate_strictly,
)
from tests.support.engine import REGISTRY, missing

DEFAULT = CHART / "examples" / "default.yaml"
SITE = yaml.safe_load(DEFAULT.read_text())
NAME = "lockstep-svc-forecast"
EXAMPLE_IDS = [p.stem for p in EXAMPLES]


def forecast_values(image: ImageRef, stage: str = "prod") -> dict:
    """What ``--render helm-values -f default.yaml`` writes for forecast at ``image``."""
    project = PROJECTS["forecast"]
    spec = services.service_launch_spec(project=project, image=image, stage=stage,
                                        data_sources={m.name: "kubernetes" for m in project.data})
    return services.helm_values(spec, service=project.service, options=chart_kube_options(SITE))


def write(tmp_path: Path, values: dict, name: str = "svc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(helm_values_text(values))
    return path


def service_docs(docs: list[dict]) -> dict[str, dict]:
    return {d["kind"]: d for d in docs if d["metadata"]["name"] == NAME}


def test_no_services_by_default(helm3):
    assert yaml.safe_load((CHART / "values.yaml").read_text())["services"] == {}
    assert service_docs(helm_template(helm3, DEFAULT)) == {}


def test_the_values_file_is_keyed_by_project_and_pinned(tmp_path):
    image = fake_image("forecast", "prod")
    text = write(tmp_path, forecast_values(image)).read_text()
    assert text.startswith(f"# services.forecast: stage prod = {image.reference}\n")
    entry = yaml.safe_load(text)["services"]["forecast"]
    assert entry["stage"] == "prod" and entry["image"] == image.reference
    assert [o["kind"] for o in entry["objects"]] == ["Deployment", "Service", "NetworkPolicy"]
    assert all("namespace" not in o["metadata"] for o in entry["objects"])


def test_objects_land_in_the_release_namespace_as_rendered(helm, tmp_path):
    image = fake_image("forecast", "prod")
    values = forecast_values(image)
    docs = helm_template(helm, DEFAULT, "-f", str(write(tmp_path, values)), namespace="models")
    got = service_docs(docs)
    assert sorted(got) == ["Deployment", "NetworkPolicy", "Service"]
    want = {o["kind"]: o for o in values["services"]["forecast"]["objects"]}
    common = {k: v for k, v in find(docs, "Service", "-hub")["metadata"]["labels"].items()
              if k != "app.kubernetes.io/component"}
    for kind, doc in got.items():
        assert doc["metadata"]["namespace"] == "models"
        assert doc["metadata"]["labels"] == {**want[kind]["metadata"]["labels"], **common}
        assert doc["metadata"]["annotations"] == want[kind]["metadata"]["annotations"]
        if kind != "Deployment":
            assert doc["spec"] == want[kind]["spec"]
    deployment = got["Deployment"]
    template, rendered = deployment["spec"]["template"], want["Deployment"]["spec"]["template"]
    assert template["metadata"] == rendered["metadata"]  # no chart labels: no chart-only rolls
    # the pod is the one spawner/services.py rendered, plus the chart's pull secret
    assert template["spec"] == {**rendered["spec"],
                                "imagePullSecrets": [{"name": "lockstep-registry"}]}
    (container,) = template["spec"]["containers"]
    assert container["image"] == image.reference and "@sha256:" in container["image"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
    assert template["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert template["spec"]["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert volumes["data-sales"]["persistentVolumeClaim"] == {"claimName": "forecast-sales",
                                                              "readOnly": True}


def test_every_document_validates_strictly(helm, tmp_path):
    svc = write(tmp_path, forecast_values(fake_image("forecast", "prod")))
    docs = helm_template(helm, DEFAULT, "-f", str(svc))
    assert len(service_docs(docs)) == 3
    validate_strictly(docs)


def test_lint_strict_with_services(helm, tmp_path):
    svc = write(tmp_path, forecast_values(fake_image("forecast", "prod")))
    proc = subprocess.run([helm, "lint", "--strict", str(CHART), "-f", str(DEFAULT), "-f",
                           str(svc)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _leaves(value, path=""):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _leaves(inner, f"{path}.{key}")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _leaves(inner, f"{path}[{i}]")
    else:
        yield path, value


def test_a_promotion_and_a_rerender_roll_only_the_pod_template(helm3, tmp_path):
    old, new = fake_image("forecast", "prod"), fake_image("forecast", "qa")  # qa -> prod
    before = service_docs(helm_template(helm3, DEFAULT, "-f", str(
        write(tmp_path, forecast_values(old), "old.yaml"))))
    after = service_docs(helm_template(helm3, DEFAULT, "-f", str(
        write(tmp_path, forecast_values(new), "new.yaml"))))
    a, b = before["Deployment"]["spec"], after["Deployment"]["spec"]
    assert a["selector"] == b["selector"]  # immutable: helm upgrade can apply it
    changed = {p for p, v in dict(_leaves(b["template"])).items()
               if dict(_leaves(a["template"])).get(p) != v}
    names = [e["name"] for e in b["template"]["spec"]["containers"][0]["env"]]
    assert changed == {
        ".metadata.labels.org.lockstep.digest",
        ".metadata.annotations.org.lockstep.digest",
        ".metadata.annotations.org.lockstep.image",
        ".spec.containers[0].image",
        f".spec.containers[0].env[{names.index('LOCKSTEP_IMAGE')}].value",
    }
    assert b["template"]["spec"]["containers"][0]["image"] == new.reference
    for kind in ("Service", "NetworkPolicy"):
        assert before[kind]["spec"] == after[kind]["spec"]


@pytest.mark.parametrize("edit, message", [
    (lambda e: e.update(image=e["image"].split("@")[0] + ":prod"), "match pattern"),  # the schema
    (lambda e: e["objects"][0]["spec"]["template"]["spec"]["containers"][0].update(
        image="registry.example.com/lockstep/forecast:prod"), "not an image by digest"),
    (lambda e: e["objects"][0]["spec"]["template"]["spec"]["containers"][0].update(
        image=fake_image("forecast", "dev").reference), "but the entry's image is"),
], ids=["tag-entry", "tag-pod", "other-digest"])
def test_an_entry_not_pinned_to_its_digest_is_refused(helm3, tmp_path, edit, message):
    values = forecast_values(fake_image("forecast", "prod"))
    edit(values["services"]["forecast"])
    svc = tmp_path / "svc.yaml"
    svc.write_text(yaml.safe_dump(values))
    proc = subprocess.run([helm3, "template", "r", str(CHART), "-f", str(DEFAULT), "-f",
                           str(svc)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_another_projects_objects_are_refused(helm3, tmp_path):
    values = forecast_values(fake_image("forecast", "prod"))
    values["services"]["vision"] = values["services"].pop("forecast")
    svc = write(tmp_path, values)
    proc = subprocess.run([helm3, "template", "r", str(CHART), "-f", str(DEFAULT), "-f",
                           str(svc)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert 'services.vision holds a Deployment of project "forecast"' in proc.stderr


def _user_pod_labels(project: str) -> dict[str, str]:
    spec = build_launch_spec(project=PROJECTS[project], image=fake_image(project, "prod"),
                             user="alice", stage="prod",
                             data_sources={m.name: "kubernetes" for m in PROJECTS[project].data})
    return pod_labels(spec)


def _ports(rule: dict) -> set:
    return {p.get("port") for p in rule.get("ports", [])} or {"any"}


def test_service_labels_agree_with_the_charts_network_policies(helm3, tmp_path):
    """Which chart policies select a service pod, and what that adds; fails on drift."""
    values = forecast_values(fake_image("forecast", "prod"))
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump({**SITE, "singleuser": {**SITE["singleuser"], "networkPolicy": {
        "projectEgress": {"forecast": {"cidrs": ["10.20.0.0/16"],
                                       "ports": [{"protocol": "TCP", "port": 5432}]}}}}}))
    docs = helm_template(helm3, site, "-f", str(write(tmp_path, values)))
    mine = service_docs(docs)
    pod = mine["Deployment"]["spec"]["template"]["metadata"]["labels"]
    users = {name: _user_pod_labels(name) for name in PROJECTS}
    port = PROJECTS["forecast"].service.port
    # the service's own policy and Service select its pods and no user server
    for selector in (mine["NetworkPolicy"]["spec"]["podSelector"],
                     {"matchLabels": mine["Service"]["spec"]["selector"]}):
        assert matches_selector(selector, pod)
        assert not any(matches_selector(selector, labels) for labels in users.values())
    charts = {p["metadata"]["name"]: p for p in by_kind(docs, "NetworkPolicy")
              if p["metadata"]["name"] != NAME}
    selecting = {n for n, p in charts.items() if matches_selector(p["spec"]["podSelector"], pod)}
    # of the chart's, only the project's egress selects it: not the user-server policy (no
    # hub API for a service), not the hub's or the proxy's
    assert selecting == {"r-lockstep-egress-forecast"}
    # so, policies only adding, the pod may send to forecast's egress and nothing else
    egress = sorted((rule.get("to", [{}])[0].get("ipBlock", {}).get("cidr", "pods"),
                     tuple(sorted(_ports(rule))))
                    for n in selecting for rule in charts[n]["spec"]["egress"])
    assert egress == [("10.20.0.0/16", (5432,))]
    # and what they admit is on the user-server port, never the service port
    for n in selecting:
        for rule in charts[n]["spec"].get("ingress", []):
            assert port not in _ports(rule) and "any" not in _ports(rule)
    # a chart peer that names lockstep pods never opens the service port to them
    for policy in charts.values():
        for rule in policy["spec"].get("egress", []) + policy["spec"].get("ingress", []):
            for peer in rule.get("to", []) + rule.get("from", []):
                if "podSelector" in peer and matches_selector(peer["podSelector"], pod):
                    assert port not in _ports(rule), policy["metadata"]["name"]


def test_chart_defaults_are_the_default_kube_options():
    """So a values file that leaves a key out means what the chart means by it."""
    assert chart_kube_options(yaml.safe_load((CHART / "values.yaml").read_text())) == \
        KubeOptions()


@pytest.mark.parametrize("values", EXAMPLES, ids=EXAMPLE_IDS)
def test_chart_values_give_the_service_what_the_hub_gives_user_pods(helm3, values, tmp_path):
    app, _ = load_hub(tmp_path, values, helm3)
    hub = kube_options(Lockstep(config=app.config))
    mine = chart_kube_options(yaml.safe_load(values.read_text()))
    # pull secrets are the chart's to add (test_objects_land_in_the_release_namespace...)
    assert mine == KubeOptions(**{**hub.__dict__, "image_pull_secrets": ()})


# -- the CLI, against a real registry and real stage pointers ------------------------------

@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> str:
    from spawner.image import localregistry

    addr = REGISTRY  # the session's (its lane's under scripts/test.sh), never a fixed port
    if not shutil.which("docker-registry") and not localregistry.answers(addr):
        missing("docker-registry is not installed (apt-get install docker-registry)")
    root = tmp_path_factory.mktemp("registry")
    state = localregistry.start(root, addr)
    yield addr
    if state.managed and state.root == str(root):
        localregistry.stop(root, addr)


@pytest.mark.registry
def test_cli_renders_the_stage_pointer_and_rerenders_after_a_promotion(registry, helm3,
                                                                        tmp_path, capfd):
    from spawner.image.registry import RegistryClient
    from spawner.promote import promote
    from tests.docker.synthetic_image import env_files, push_image

    namespace = f"t{uuid.uuid4().hex[:10]}"
    config = tmp_path / "lockstep_config.py"
    config.write_text(f"c.Lockstep.registry = '{registry}/{namespace}'\n"
                      f"c.Lockstep.environments_dir = '{ROOT / 'environments'}'\n"
                      f"c.Lockstep.data_dir = '{tmp_path / 'state'}'\n")
    settings = load_settings(str(config))
    out = tmp_path / "svc.yaml"

    def deploy(*extra: str) -> int:
        return cli.main(["--config", str(config), "deploy", "forecast", "--stage", "prod",
                         "--render", "helm-values", *extra])

    def push_and_promote(salt: str) -> str:
        with RegistryClient.for_host(registry, insecure_registries=("127.0.0.1",)) as client:
            digest = push_image(client, f"{namespace}/forecast", project="forecast",
                                lock_hash="sha256:" + "1" * 64, files=env_files(), salt=salt)
        for stage in ("qa", "prod"):
            record = promote(settings, "forecast", stage, user="ci", gates=[])
            assert record.outcome == "promoted", record.message
        return digest

    assert deploy("-f", str(DEFAULT), "-o", str(out)) == 2
    assert "stage 'prod' of project 'forecast' has no image yet" in capfd.readouterr().err
    assert not out.exists()
    first = push_and_promote("one")
    assert deploy("--namespace", "models") == 2
    assert "--namespace applies to --render k8s" in capfd.readouterr().err
    assert deploy() == 2  # no data volume for forecast's 'sales' mount in the site config
    assert "c.LockstepKubeSpawner.data_volumes" in capfd.readouterr().err
    bare = tmp_path / "bare.yaml"
    bare.write_text("singleuser: {tmpMedium: Memory}\n")
    assert deploy("-f", str(bare)) == 2  # the same, with chart values: named as such
    assert "singleuser.dataVolumes" in capfd.readouterr().err
    assert deploy("-f", str(DEFAULT), "-o", str(out)) == 0
    repo = f"{registry}/{namespace}/forecast"
    assert yaml.safe_load(out.read_text())["services"]["forecast"]["image"] == f"{repo}@{first}"
    old = service_docs(helm_template(helm3, DEFAULT, "-f", str(out)))["Deployment"]

    second = push_and_promote("two")  # a new prod digest: re-render, then helm upgrade
    assert second != first
    assert deploy("-f", str(DEFAULT), "-o", str(out)) == 0
    new = service_docs(helm_template(helm3, DEFAULT, "-f", str(out)))["Deployment"]
    assert old["spec"]["template"]["spec"]["containers"][0]["image"] == f"{repo}@{first}"
    assert new["spec"]["template"]["spec"]["containers"][0]["image"] == f"{repo}@{second}"
    assert new["spec"]["selector"] == old["spec"]["selector"]
