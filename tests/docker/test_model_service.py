"""A model promoted with its image, served for real: ``lockstep model push --pin``, promote
to prod, ``lockstep deploy`` (real registry, real engine). A dev member rewriting the
workspace model does not change what prod serves; promoting a new model does; rollback
restores the old (image, model) pair."""

from __future__ import annotations

import json
import urllib.request

import pytest

from spawner.models.pairs import model_tag
from tests.docker.lockstep_site import ForecastSite, free_port

pytestmark = [pytest.mark.docker, pytest.mark.registry]
SVC = {"org.lockstep.kind": "service"}


@pytest.fixture(scope="module")
def site(locked_project, built_image, registry, docker_client, tmp_path_factory):
    root = tmp_path_factory.mktemp("model-envs")
    lock = locked_project("forecast", ["python=3.11", "numpy"],
                          root=tmp_path_factory.mktemp("model-lock")) / "conda-lock.yml"
    site = ForecastSite(root=root, lock=lock, build=built_image(lock.parent), registry=registry,
                        tmp=tmp_path_factory.mktemp("model-site"))
    site.port = free_port()
    site.push_build()
    yield site
    for container in site.containers(docker_client, **SVC):  # shown only when a test failed
        print(container.name, container.logs(tail=20).decode(errors="replace"))
    site.cleanup(docker_client)


def push_model(site, capfd, slope: float) -> str:
    folder = site.tmp / f"model-{slope}"
    folder.mkdir(exist_ok=True)
    (folder / "model.json").write_text(json.dumps({"slope": slope, "intercept": 0.0}))
    assert site.lockstep("model", "push", site.name, str(folder / "model.json"), "--pin") == 0
    return capfd.readouterr().out.strip().split("@")[1]


def dev_member_writes_workspace_model(site, slope: float) -> None:
    model = json.dumps({"slope": slope, "intercept": 0.0})
    code = f"open('/workspace/model.json', 'w').write({model!r})"
    assert site.lockstep("run", site.name, "--stage", "dev", "--", "python", "-c", code) == 0


def deploy(site, capfd) -> dict:
    assert site.lockstep("deploy", site.name, "--stage", "prod", "--port", str(site.port),
                         "--timeout", "40", "--json") == 0
    (row,) = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    return row


def get(site, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{site.port}{path}", timeout=5) as response:
        return json.loads(response.read())


def test_prod_serves_the_promoted_model_whatever_dev_writes(site, docker_client, capfd):
    m1 = push_model(site, capfd, 1.0)
    v1 = site.to_prod()
    with site.client() as client:
        assert client.head_manifest(site.repo, model_tag("prod")) == m1
    dev_member_writes_workspace_model(site, 99.0)
    row = deploy(site, capfd)
    assert (row["action"], row["digest"], row["model"]) == ("started", v1, m1)
    health = get(site, "/health")
    assert (health["model"]["slope"], health["model_digest"]) == (1.0, m1)
    dev_member_writes_workspace_model(site, 50.0)  # after the deploy, too
    assert get(site, "/predict?ad_spend=10")["sales"] == 10.0
    (container,) = site.containers(docker_client, **SVC)
    mount = next(m for m in container.attrs["Mounts"] if m["Destination"] == "/opt/model")
    assert (mount["Type"], mount["RW"]) == ("bind", False)
    assert f"LOCKSTEP_MODEL_DIGEST={m1}" in container.attrs["Config"]["Env"]
    code, out = container.exec_run(["/opt/env/bin/python", "-c",
                                    "open('/opt/model/model.json', 'w').write('{}')"])
    assert code != 0 and b"Read-only file system" in out
    site.m1, site.v1 = m1, v1


def test_promoting_a_new_model_changes_prod_and_rollback_restores_the_pair(site, capfd):
    m2 = push_model(site, capfd, 2.0)
    assert site.to_prod() == site.v1  # same image, new model
    row = deploy(site, capfd)
    assert (row["action"], row["digest"], row["model"]) == ("rolled", site.v1, m2)
    assert get(site, "/health")["model_digest"] == m2
    assert get(site, "/predict?ad_spend=10")["sales"] == 20.0
    assert site.rollback_prod() == site.v1
    with site.client() as client:
        assert client.head_manifest(site.repo, model_tag("prod")) == site.m1
    row = deploy(site, capfd)
    assert (row["action"], row["model"]) == ("rolled", site.m1)
    assert get(site, "/predict?ad_spend=10")["sales"] == 10.0
    assert site.lockstep("deploy", site.name, "--remove") == 0
