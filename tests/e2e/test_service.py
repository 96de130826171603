"""The lockstep service in a real JupyterHub + configurable-http-proxy, against the real
registry: two users with API tokens of different hub users get different answers.

The hub is ``tests.e2e.hubtools.Hub`` (``spawner.docker.hubconfig.configure``, which adds
the service through ``service_config``), so the hub starts ``python -m spawner.hubservice``
itself and proxies ``/services/lockstep/`` to it. Project ``svc-alpha`` (member alice) has
two synthetic images in the registry (``tests.docker.synthetic_image``): ``dev`` and
``qa`` with different packages, and one promotion in the trail; ``svc-beta`` (member
carol) has ``dev`` only. Alice sees svc-alpha with both stages, its dev -> qa diff and its
timeline, and gets 404 for svc-beta, worded as for a project that does not exist; carol
the reverse; an anonymous request gets 403. Bob's server on ``svc-live`` (the e2e image,
``c.Lockstep.idle_after = 2`` in this hub) shows in an admin's idle list with its project,
digest and stage, and nothing of it reaches bob or carol (non-admins). With
``LOCKSTEP_E2E_SCREENSHOTS`` unset, a headless Chromium screenshot of alice's page is kept
under ``artifacts/e2e/`` when Chromium is installed.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import httpx
import pytest

from spawner.image.registry import RegistryClient
from spawner.promote.trail import AuditRecord, AuditTrail, GateResult
from tests.docker.synthetic_image import Pkg, env_files, push_image
from tests.e2e.hubtools import PASSWORD, REPO_ROOT, Hub

DEV = (Pkg("alpha", "1.0"), Pkg("beta", "2.1"), Pkg("python", "3.11.7"))
QA = (Pkg("alpha", "1.1"), Pkg("gamma", "0.3"), Pkg("python", "3.11.7"))
PROJECTS = {"svc-alpha": "members: {users: [alice]}\ndescription: Alpha forecasts\n",
            "svc-beta": "members: {users: [carol]}\ndescription: Beta secrets\n",
            "svc-live": "members: {users: [bob]}\nresources: {cpu: 1, memory: 1G}\n"}
IDLE_AFTER = 2
ARTIFACTS = REPO_ROOT / "artifacts" / "e2e"


def _push(client: RegistryClient, project: str, packages, tag: str, salt: str) -> str:
    lock = "sha256:" + hashlib.sha256(repr(packages).encode()).hexdigest()
    return push_image(client, f"lockstep/{project}", project=project, lock_hash=lock,
                      files=env_files(packages), tag=tag, salt=salt)


@pytest.fixture(scope="module")
def service_hub(tmp_path_factory, registry):
    root = tmp_path_factory.mktemp("svc")
    for name, body in PROJECTS.items():
        (root / "environments" / name).mkdir(parents=True)
        (root / "environments" / name / "project.yaml").write_text(f"name: {name}\n{body}")
    (root / "data").mkdir()
    salt = os.urandom(4).hex()
    with RegistryClient.for_host(registry, insecure_registries=("127.0.0.1",)) as client:
        digests = {"dev": _push(client, "svc-alpha", DEV, "dev", salt),
                   "qa": _push(client, "svc-alpha", QA, "qa", salt),
                   "beta": _push(client, "svc-beta", DEV, "dev", salt + "b")}
    AuditTrail(root / "state" / "audit.jsonl").append(AuditRecord(
        time="2026-01-02T10:00:00.000Z", action="promote", project="svc-alpha", user="alice",
        to_stage="qa", outcome="promoted", digest=digests["qa"], from_stage="dev",
        gates=(GateResult("verify", "passed", 0.5),)))
    hub = Hub(root, registry, settings={"idle_after": IDLE_AFTER})
    hub.start()
    try:
        tokens = {u: hub.api("POST", f"/users/{u}/tokens", {"note": "svc e2e"}).json()["token"]
                  for u in ("alice", "bob", "carol", "admin")}
        _wait_for_service(hub, tokens["alice"])
        yield hub, tokens, digests
    except BaseException:
        print(f"\n----- hub log (tail) -----\n{hub.log_tail()}")
        raise
    finally:
        hub.stop()


def _wait_for_service(hub: Hub, token: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if get(hub, "api/projects", token).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the lockstep service did not answer in 60s:\n{hub.log_tail()}")


def get(hub: Hub, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    return httpx.get(f"{hub.url}/services/lockstep/{path}", headers=headers, timeout=60,
                     follow_redirects=False)


def test_a_member_sees_the_project_and_its_stages(service_hub):
    hub, tokens, digests = service_hub
    listing = get(hub, "api/projects", tokens["alice"]).json()["projects"]
    assert [p["name"] for p in listing] == ["svc-alpha"]
    assert listing[0]["stages"] == {"dev": digests["dev"], "qa": digests["qa"], "prod": None}
    detail = get(hub, "api/projects/svc-alpha", tokens["alice"]).json()
    assert detail["description"] == "Alpha forecasts"
    rows = {r["stage"]: r for r in detail["stages"]}
    assert rows["qa"]["digest"] == digests["qa"] and rows["qa"]["size"] > 0
    assert rows["qa"]["lock_hash"].startswith("sha256:") and rows["prod"]["digest"] is None


def test_a_non_member_gets_404_and_does_not_see_it_listed(service_hub):
    hub, tokens, _ = service_hub
    assert [p["name"] for p in get(hub, "api/projects", tokens["carol"]).json()["projects"]] \
        == ["svc-beta"]
    for path in ("api/projects/svc-alpha", "api/projects/svc-alpha/diff",
                 "api/projects/svc-alpha/timeline", "?project=svc-alpha"):
        hidden = get(hub, path, tokens["carol"])
        assert hidden.status_code == 404, (path, hidden.text)
        assert "Alpha forecasts" not in hidden.text and "alice" not in hidden.text
    hidden = get(hub, "api/projects/svc-alpha", tokens["carol"]).json()["message"]
    missing = get(hub, "api/projects/svc-nothing", tokens["carol"]).json()["message"]
    assert hidden.replace("svc-alpha", "X") == missing.replace("svc-nothing", "X")
    assert get(hub, "api/projects/svc-beta", tokens["alice"]).status_code == 404
    assert get(hub, "api/projects", None).status_code == 403


def test_diff_between_stages_and_digests(service_hub):
    hub, tokens, digests = service_hub
    found = get(hub, "api/projects/svc-alpha/diff?from=dev&to=qa", tokens["alice"]).json()
    diff = found["diff"]
    assert [p["name"] for p in diff["added"]] == ["gamma"]
    assert [p["name"] for p in diff["removed"]] == ["beta"]
    assert [(c["name"], c["from"]["version"], c["to"]["version"]) for c in diff["changed"]] \
        == [("alpha", "1.0", "1.1")]
    assert diff["unchanged"] == 1
    by_digest = get(hub, f"api/projects/svc-alpha/diff?from={digests['qa']}&to=dev",
                    tokens["alice"]).json()["diff"]
    assert [p["name"] for p in by_digest["added"]] == ["beta"]
    unknown = get(hub, f"api/projects/svc-alpha/diff?from=sha256:{'0' * 64}&to=dev",
                  tokens["alice"])
    assert unknown.status_code == 404 and "sha256:000" in unknown.json()["message"]
    assert get(hub, "api/projects/svc-alpha/diff?from=nope", tokens["alice"]).status_code == 400


def test_timeline_sessions_and_page(service_hub):
    hub, tokens, digests = service_hub
    timeline = get(hub, "api/projects/svc-alpha/timeline", tokens["alice"]).json()
    assert timeline["lanes"] == ["dev", "qa", "prod"]
    assert [(m["user"], m["to_stage"], m["outcome"]) for m in timeline["moves"]] == [
        ("alice", "qa", "promoted")]
    mine = get(hub, "api/sessions", tokens["alice"]).json()
    assert mine["user"] == "alice" and mine["admin"] is False and "running" not in mine
    html = get(hub, "", tokens["alice"])
    assert html.status_code == 200 and "text/html" in html.headers["content-type"]
    assert "svc-alpha" in html.text and "svc-beta" not in html.text
    assert digests["qa"][:19] in html.text and "<svg" in html.text
    _screenshot(hub)


def test_an_idle_server_shows_to_admins_and_nothing_of_it_to_others(
        service_hub, e2e_image, docker_api, tmp_path):
    from spawner.image.registry import copy_image

    hub, tokens, _ = service_hub
    with RegistryClient.for_host(e2e_image.registry,
                                 insecure_registries=("127.0.0.1",)) as client:
        copy_image(client, e2e_image.repo, client, "lockstep/svc-live", e2e_image.digest,
                   tags=("dev",), workdir=tmp_path)
    try:
        try:
            response, _ = hub.spawn("bob", {"project": "svc-live", "stage": "dev"})
        except RuntimeError:
            print(_container_logs(docker_api, "svc-live"))
            raise
        assert response.status_code in (201, 202), response.text
        assert (hub.server("bob") or {}).get("ready"), hub.log_tail()
        time.sleep(IDLE_AFTER + 1)
        idle = get(hub, "api/sessions", tokens["admin"]).json()["idle"]
        assert idle["idle_after"] == IDLE_AFTER and idle["unavailable"] is None, idle
        rows = [s for s in idle["servers"] if s["user"] == "bob"]
        assert len(rows) == 1, idle
        assert (rows[0]["project"], rows[0]["digest"], rows[0]["stages"]) == (
            "svc-live", e2e_image.digest, ["dev"])
        assert rows[0]["idle_seconds"] >= IDLE_AFTER and rows[0]["server_name"] == ""
        admin_page = get(hub, "", tokens["admin"]).text
        assert 'id="idle"' in admin_page and "svc-live" in admin_page
        for user in ("bob", "carol"):
            mine = get(hub, "api/sessions", tokens[user])
            assert "idle" not in mine.json() and "running" not in mine.json()
            html = get(hub, "", tokens[user]).text
            assert 'id="idle"' not in html and "Idle servers" not in html
        assert "bob" not in get(hub, "api/sessions", tokens["carol"]).text
    finally:
        hub.stop_server("bob")
        _remove_project_objects(docker_api, "svc-live")


def _container_logs(docker_api, project: str) -> str:
    """The logs of the project's containers (printed when a spawn failed)."""
    label = f"org.lockstep.project={project}"
    return "\n".join(
        f"----- {c['Names']} -----\n{docker_api.logs(c['Id'], tail=80).decode(errors='replace')}"
        for c in docker_api.containers(all=True, filters={"label": label}))


def _remove_project_objects(docker_api, project: str) -> None:
    from spawner.docker import engine as dockerops

    label = f"org.lockstep.project={project}"
    for container in docker_api.containers(all=True, filters={"label": label}):
        dockerops.remove_container(docker_api, container["Id"])
    for net in docker_api.networks(filters={"label": label}):
        docker_api.remove_network(net["Id"])
    for volume in (docker_api.volumes(filters={"label": label}) or {}).get("Volumes") or []:
        docker_api.remove_volume(volume["Name"], force=True)


def _screenshot(hub: Hub) -> None:
    """Alice logs in through the hub's form and OAuth, and her page is photographed."""
    chromium, driver_path = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
    if not (os.access(chromium, os.X_OK) and os.access(driver_path, os.X_OK)):
        return
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1400"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(driver_path)), options=options)
    try:
        driver.set_page_load_timeout(60)
        driver.get(f"{hub.url}/services/lockstep/")
        driver.find_element(By.ID, "username_input").send_keys("alice")
        driver.find_element(By.ID, "password_input").send_keys(PASSWORD)
        driver.find_element(By.ID, "login_submit").click()
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, "timeline"))
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "svc-alpha" in text and "signed in as alice" in text
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "service-page-alice.png"))
    finally:
        driver.quit()
