"""The lockstep service's write side in a real JupyterHub + proxy, against the real registry:
promotions, approvals and rollbacks by hub identities, refusals that move nothing, a
tampered trail, and an approver approving on the page in headless Chromium.

Project ``svc-write`` (members alice, bob, carol) has a lock and synthetic images that pass
the real gates (``verify`` reads the image from the registry; the project has no
notebooks). Approvers: ``c.Lockstep.approvers = ["carol", "group:alpha-team"]`` (bob is in
hub group alpha-team); alice is not one. Every refusal is checked against the registry's
tags, read directly: nothing moved.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from spawner.image.build import lock_hash
from spawner.image.registry import RegistryClient
from tests.docker.synthetic_image import env_files, push_image, write_lock
from tests.e2e.hubtools import PASSWORD, REPO_ROOT, Hub
from tests.e2e.servicetools import wait_for_service
from tests.support.engine import missing

PROJECT = "svc-write"
REPO = f"lockstep/{PROJECT}"
ARTIFACTS = REPO_ROOT / "artifacts" / "e2e"
PREFIX = ('c.Lockstep.approvers = ["carol", "group:alpha-team"]\n'
          "c.Lockstep.notebooks_dir = {notebooks!r}\n")


class Site:
    def __init__(self, hub: Hub, registry: str, lock: Path, tokens: dict[str, str]):
        self.hub, self.registry, self.lock, self.tokens = hub, registry, lock, tokens
        self.salt = os.urandom(4).hex()
        self.builds = 0

    def client(self) -> RegistryClient:
        return RegistryClient.for_host(self.registry, insecure_registries=("127.0.0.1",))

    def build(self) -> str:
        """A new image of the lock at ``dev``, as ``lockstep build`` would leave it."""
        self.builds += 1
        with self.client() as client:
            return push_image(client, REPO, project=PROJECT, lock_hash=lock_hash(self.lock),
                              files=env_files(), tag="dev", salt=f"{self.salt}-{self.builds}")

    def tags(self) -> dict[str, str | None]:
        with self.client() as client:
            return {s: client.head_manifest(REPO, s) for s in ("dev", "qa", "prod")}

    def post(self, user: str, verb: str, body: dict) -> httpx.Response:
        return httpx.post(f"{self.hub.url}/services/lockstep/api/projects/{PROJECT}/{verb}",
                          json=body, headers={"Authorization": f"token {self.tokens[user]}"},
                          timeout=300)

    def trail(self) -> Path:
        return self.hub.root / "state" / "audit.jsonl"

    def to_prod(self) -> str:
        """dev -> qa (alice), ask for prod (alice), approve (bob): returns the digest."""
        digest = self.build()
        assert self.post("alice", "promote", {"to": "qa"}).json()["outcome"] == "promoted"
        request = self.post("alice", "promote", {"to": "prod"}).json()["request"]
        done = self.post("bob", "approve", {"request": request["id"]})
        assert done.status_code == 200 and done.json()["outcome"] == "promoted", done.text
        return digest


@pytest.fixture(scope="module")
def site(tmp_path_factory, registry):
    root = tmp_path_factory.mktemp("svcw")
    project_dir = root / "environments" / PROJECT
    project_dir.mkdir(parents=True)
    (project_dir / "project.yaml").write_text(
        f"name: {PROJECT}\ndescription: promotions\nmembers: {{users: [alice, bob, carol]}}\n")
    lock = write_lock(project_dir / "conda-lock.yml")
    (root / "data").mkdir()
    hub = Hub(root, registry)
    config = root / "jupyterhub_config.py"
    config.write_text(PREFIX.format(notebooks=str(root / "notebooks")) + config.read_text())
    hub.start()
    try:
        tokens = {u: hub.api("POST", f"/users/{u}/tokens", {"note": "svcw"}).json()["token"]
                  for u in ("alice", "bob", "carol")}
        wait_for_service(hub, tokens["alice"])
        yield Site(hub, registry, lock, tokens)
    except BaseException:
        print(f"\n----- hub log (tail) -----\n{hub.log_tail()}")
        raise
    finally:
        hub.stop()


def test_members_promote_approvers_approve_and_every_refusal_moves_nothing(site):
    first = site.build()
    moved = site.post("alice", "promote", {"to": "qa"})
    assert moved.status_code == 200, moved.text
    record = moved.json()["record"]
    assert (record["user"], record["outcome"], record["authenticated"]) == \
        ("alice", "promoted", True)
    assert [g["status"] for g in record["gates"]] == ["passed", "passed"]  # verify, notebooks
    assert site.tags() == {"dev": first, "qa": first, "prod": None}

    asked = site.post("alice", "promote", {"to": "prod"})
    assert asked.status_code == 202 and asked.json()["outcome"] == "pending", asked.text
    request = asked.json()["request"]
    assert (request["requested_by"], request["digest"]) == ("alice", first)
    assert site.post("alice", "promote", {"to": "prod"}).json()["request"]["id"] == request["id"]

    page = httpx.get(f"{site.hub.url}/services/lockstep/?project={PROJECT}", timeout=60,
                     headers={"Authorization": f"token {site.tokens['alice']}"}).text
    assert "waiting for another approver" in page and "/approve" not in page
    lead_page = httpx.get(f"{site.hub.url}/services/lockstep/?project={PROJECT}", timeout=60,
                          headers={"Authorization": f"token {site.tokens['bob']}"}).text
    assert "Waiting for your approval (1)" in lead_page and "/approve" in lead_page
    denied = site.post("alice", "approve", {"request": request["id"]})
    assert denied.status_code == 403 and "alice may not approve" in denied.json()["message"]
    assert site.post("alice", "rollback", {"stage": "prod"}).status_code == 403
    assert site.post("carol", "approve", {"request": "nope"}).status_code == 404
    rejected = site.post("bob", "reject", {"request": request["id"], "reason": "not today"})
    assert rejected.json()["request"]["state"] == "rejected"
    assert site.post("carol", "approve", {"request": request["id"]}).status_code == 409
    assert site.tags()["prod"] is None

    own = site.post("carol", "promote", {"to": "prod"}).json()["request"]
    selfie = site.post("carol", "approve", {"request": own["id"]})
    assert selfie.status_code == 403 and "may not decide it" in selfie.json()["message"]
    assert site.tags()["prod"] is None

    approved = site.post("bob", "approve", {"request": own["id"]})
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["outcome"] == "promoted" and body["request"]["state"] == "approved"
    assert (body["record"]["user"], body["record"]["approved_by"]) == ("carol", "bob")
    assert [g["name"] for g in body["record"]["gates"]] == ["approval", "verify", "notebooks"]
    assert site.tags() == {"dev": first, "qa": first, "prod": first}
    lines = [json.loads(line) for line in site.trail().read_text().splitlines()]
    assert all(line["authenticated"] is True and "prev" in line for line in lines)
    assert site.post("alice", "promote", {"to": "staging"}).status_code == 400
    mallory = httpx.post(f"{site.hub.url}/services/lockstep/api/projects/{PROJECT}/promote",
                         json={"to": "qa"}, timeout=30)
    assert mallory.status_code == 403  # no token, no cookie


def test_a_hand_edited_trail_line_makes_rollback_refuse(site):
    if site.tags()["prod"] is None:
        site.to_prod()
    before = site.tags()["prod"]
    latest = site.to_prod()
    assert site.tags()["prod"] == latest != before
    original = site.trail().read_text()
    lines = original.splitlines()
    lines[0] = lines[0].replace('"user":"alice"', '"user":"mallory"')
    assert lines[0] != original.splitlines()[0]
    site.trail().write_text("\n".join(lines) + "\n")
    refused = site.post("bob", "rollback", {"stage": "prod"})
    assert refused.status_code == 409, refused.text
    message = refused.json()["message"]
    assert "line 2" in message and "hash chain is broken" in message
    assert "restore audit.jsonl from a backup" in message
    assert site.tags()["prod"] == latest
    refused = site.post("alice", "promote", {"to": "qa"})
    assert refused.status_code == 409 and site.trail().read_text().count("\n") == len(lines)
    site.trail().write_text(original)
    back = site.post("bob", "rollback", {"stage": "prod"})
    assert back.status_code == 200 and back.json()["outcome"] == "rolled-back", back.text
    assert site.tags()["prod"] == before
    timeline = httpx.get(f"{site.hub.url}/services/lockstep/api/projects/{PROJECT}/timeline",
                         headers={"Authorization": f"token {site.tokens['alice']}"},
                         timeout=30).json()
    assert timeline["moves"][-1]["action"] == "rollback"
    assert timeline["moves"][-1]["user"] == "bob"


def test_an_approver_approves_on_the_page_and_forged_or_replayed_posts_fail(site):
    browser = pytest.importorskip("tests.e2e.browser", reason="needs selenium")
    if not browser.available():
        missing("needs /usr/bin/chromium and /usr/bin/chromedriver")
    digest = site.build()
    assert site.post("alice", "promote", {"to": "qa"}).status_code == 200
    request = site.post("alice", "promote", {"to": "prod"}).json()["request"]
    previous = site.tags()["prod"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with browser.Browser() as chrome:
        chrome.login(site.hub.url, "carol", PASSWORD, f"/services/lockstep/?project={PROJECT}")
        assert "Waiting for your approval" in chrome.body_text()
        row = chrome.request_row(request["id"])
        token = row.find_element(browser.By.NAME, "_xsrf").get_attribute("value")
        chrome.save(ARTIFACTS / "service-approve-before.png")
        cookies = chrome.cookies()
        url = f"{site.hub.url}/services/lockstep/api/projects/{PROJECT}/"
        forged = httpx.post(url + "rollback", data={"stage": "prod"}, cookies=cookies,
                            timeout=30)
        wrong = httpx.post(url + "rollback", data={"stage": "prod", "_xsrf": "x" + token},
                           cookies=cookies, timeout=30)
        assert (forged.status_code, wrong.status_code) == (403, 403)
        assert site.tags()["prod"] == previous
        chrome.click_approve(row)
        text = chrome.body_text()
        assert "promoted" in text and "now points at" in text, text
        chrome.save(ARTIFACTS / "service-approve-done.png")
        replay = httpx.post(url + "approve", data={"request": request["id"], "_xsrf": token},
                            cookies=cookies, timeout=60)
        assert replay.status_code == 409 and "already approved" in replay.text
    assert site.tags()["prod"] == digest
