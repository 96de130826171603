"""``lockstep deploy`` for real: the forecast model service runs from prod's digest, answers
its health path and predictions, rolls to a newly promoted digest and back on rollback,
keeps the old digest when a new one is unhealthy, and refuses port clashes cleanly."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.docker.lockstep_site import REPO, ForecastSite, free_port, notebook_code

pytestmark = [pytest.mark.docker, pytest.mark.registry]
SVC = {"org.lockstep.kind": "service"}
# how long deploy waits for the unhealthy candidate: the good image's candidate is
# healthy in 1-3 s here, so this only cuts the wait for one that never will be
UNHEALTHY_DEADLINE_S = 8.0


@pytest.fixture(scope="module")
def site(locked_project, built_image, registry, docker_client, tmp_path_factory):
    root = tmp_path_factory.mktemp("svc-envs")
    lock = locked_project("forecast", ["python=3.11", "numpy"],
                          root=tmp_path_factory.mktemp("svc-lock")) / "conda-lock.yml"
    site = ForecastSite(root=root, lock=lock, build=built_image(lock.parent), registry=registry,
                        tmp=tmp_path_factory.mktemp("svc-site"))
    site.port = free_port()
    site.push_build()
    site.v1 = site.to_prod()
    code = notebook_code(REPO / "notebooks" / "forecast" / "train.ipynb")
    assert site.lockstep("run", site.name, "--stage", "prod", "--", "python", "-c", code) == 0
    yield site
    for container in site.containers(docker_client, **SVC):  # shown only when a test failed
        print(container.name, container.logs(tail=20).decode(errors="replace"))
    site.cleanup(docker_client)


def get(site, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{site.port}{path}", timeout=5) as response:
        assert response.status == 200
        return json.loads(response.read())


def running(site, docker_client) -> dict[str, str]:
    """{container name: digest label} of the service containers."""
    return {c.name: c.labels["org.lockstep.digest"]
            for c in site.containers(docker_client, **SVC)}


def deploy(site, *extra: str, timeout: float = 40) -> int:
    return site.lockstep("deploy", site.name, "--stage", "prod", "--port", str(site.port),
                         "--timeout", str(timeout), *extra)


def test_deploy_serves_health_and_predictions_from_prods_digest(site, docker_client, capfd):
    began = time.monotonic()
    assert deploy(site) == 0
    site.first_deploy_s = time.monotonic() - began
    assert "action=started" in capfd.readouterr().out
    name = f"lockstep-svc_{site.name}_0"
    assert running(site, docker_client) == {name: site.v1}
    container = docker_client.containers.get(name)
    attrs = container.attrs
    assert attrs["Config"]["Image"] == f"{site.settings.registry}/{site.name}@{site.v1}"
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert attrs["HostConfig"]["PortBindings"]["8080/tcp"] == [
        {"HostIp": "127.0.0.1", "HostPort": str(site.port)}]
    assert attrs["HostConfig"]["ReadonlyRootfs"] and attrs["HostConfig"]["CapDrop"] == ["ALL"]
    assert attrs["Config"]["User"] == "1000:100"
    assert attrs["Config"]["Healthcheck"]["Test"][1] == "/opt/env/bin/python"
    for _ in range(50):  # deploy returned once /health answered; Docker's check follows
        container.reload()
        if container.attrs["State"]["Health"]["Status"] != "starting":
            break
        time.sleep(0.2)
    assert container.attrs["State"]["Health"]["Status"] == "healthy"
    health = get(site, "/health")
    assert health["status"] == "ok" and set(health["model"]) >= {"slope", "intercept"}
    model = health["model"]
    prediction = get(site, "/predict?ad_spend=20")
    assert prediction["sales"] == pytest.approx(model["slope"] * 20 + model["intercept"])
    assert deploy(site) == 0  # nothing to do
    assert "action=unchanged" in capfd.readouterr().out


def test_the_running_service_passes_the_cis_audit(site, capfd):
    assert site.lockstep("audit", "--json", "--project", site.name) == 0
    report = json.loads(capfd.readouterr().out)
    assert [(c["name"], c["kind"]) for c in report["containers"]] == [
        (f"lockstep-svc_{site.name}_0", "service")]
    found = {r["check"]: r["status"] for r in report["results"]}
    assert found.pop("restart-policy") == "exception"  # unless-stopped: see spawner.docker.cis
    assert set(found.values()) <= {"pass", "n/a"} and report["failed"] == 0


def test_deploy_rolls_to_a_new_prod_digest_and_back_on_rollback(site, docker_client, capfd):
    name = f"lockstep-svc_{site.name}_0"
    v2 = site.push_variant("v2")
    assert site.to_prod() == v2 != site.v1
    assert deploy(site, "--json") == 0
    (row,) = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    assert (row["action"], row["digest"], row["previous"]) == ("rolled", v2, site.v1)
    site.switch_s, site.candidate_s = row["switch_s"], row["candidate_healthy_s"]
    assert running(site, docker_client) == {name: v2}
    assert get(site, "/health")["status"] == "ok"
    assert site.rollback_prod() == site.v1
    assert deploy(site) == 0
    assert running(site, docker_client) == {name: site.v1}
    assert get(site, "/predict?ad_spend=1")["sales"] > 0
    print(f"\nfirst deploy {site.first_deploy_s:.1f}s; candidate healthy after "
          f"{site.candidate_s:.2f}s; port unserved during the switch {site.switch_s:.2f}s")


def test_an_unhealthy_new_digest_never_replaces_the_running_one(site, docker_client, capfd):
    name = f"lockstep-svc_{site.name}_0"
    bad = site.push_variant("bad", tag=None)
    # prod now points at a digest the running service does not run, and whose service
    # cannot become healthy (here: it is pointed at a model that does not exist)
    project_yaml = Path(site.settings.environments_dir) / site.name / "project.yaml"
    good = project_yaml.read_text()
    project_yaml.write_text(good.replace("/workspace/model.json", "/workspace/missing.json"))
    site.force_tag(bad, "prod")
    try:
        # its health path answers 503 for good: deploy's own deadline (--timeout) gives up;
        # Docker's verdict would only come after the check's 30 s start period and 3 retries
        assert deploy(site, timeout=UNHEALTHY_DEADLINE_S) == 2
        err = capfd.readouterr().err
        assert f"the new image {bad} of '{site.name}' failed its health check" in err
        assert f"it was not healthy after {UNHEALTHY_DEADLINE_S:.0f}s" in err
        assert "was kept as it was" in err
        assert running(site, docker_client) == {name: site.v1}
        assert get(site, "/health")["status"] == "ok"
    finally:
        project_yaml.write_text(good)
        site.force_tag(site.v1, "prod")


def test_a_port_held_by_another_program_is_refused_and_nothing_runs(site, docker_client, capfd):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        other = ForecastSite(root=Path(site.settings.environments_dir), build=site.build,
                             lock=Path(site.settings.environments_dir) / site.name /
                             "conda-lock.yml", registry=site.host, tmp=site.tmp)
        other.config = site.config
        assert site.lockstep("deploy", other.name, "--port", str(port)) == 2
    err = capfd.readouterr().err
    assert f"port {port} on 127.0.0.1 is in use by another program on this host" in err
    assert other.containers(docker_client) == []


def test_two_services_on_one_port_are_refused_and_nothing_runs(site, docker_client, capfd):
    other = ForecastSite(root=Path(site.settings.environments_dir), build=site.build,
                         lock=Path(site.settings.environments_dir) / site.name /
                         "conda-lock.yml", registry=site.host, tmp=site.tmp)
    other.config = site.config
    assert site.lockstep("deploy", other.name, "--port", str(site.port)) == 2
    err = capfd.readouterr().err
    assert f"port {site.port} is already used by service '{site.name}'" in err
    assert other.containers(docker_client) == []
    assert len(running(site, docker_client)) == 1


def test_unknown_stage_and_stage_without_digest_are_explained(site, docker_client, capfd):
    assert site.lockstep("deploy", site.name, "--stage", "staging") == 2
    assert "unknown stage 'staging'" in capfd.readouterr().err
    other = ForecastSite(root=Path(site.settings.environments_dir), build=site.build,
                         lock=Path(site.settings.environments_dir) / site.name /
                         "conda-lock.yml", registry=site.host, tmp=site.tmp)
    other.config = site.config
    assert site.lockstep("deploy", other.name, "--port", str(free_port())) == 2
    assert f"stage 'prod' of project '{other.name}' has no image yet" in capfd.readouterr().err
    assert other.containers(docker_client) == []


def test_render_k8s_writes_objects_pinned_to_prods_digest(site, tmp_path, capfd):
    out = tmp_path / "k8s"
    site.config.LockstepKubeSpawner.data_volumes = {"sales": {"pvc": "sales-data"}}
    try:
        assert site.lockstep("deploy", site.name, "--render", "k8s", "-o", str(out)) == 0
    finally:
        del site.config["LockstepKubeSpawner"]
    docs = {p.stem: yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.yaml"))}
    assert sorted(docs) == ["deployment", "networkpolicy", "service"]
    image = docs["deployment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith("@" + site.digest("prod"))
    assert site.lockstep("deploy", site.name, "--render", "k8s") == 2
    assert "c.LockstepKubeSpawner.data_volumes" in capfd.readouterr().err


def test_remove_leaves_nothing(site, docker_client, capfd):
    assert site.lockstep("deploy", site.name, "--remove") == 0
    assert f"removed lockstep-svc_{site.name}_0" in capfd.readouterr().out
    assert site.containers(docker_client, **SVC) == []
