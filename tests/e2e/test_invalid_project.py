"""One invalid ``project.yaml`` beside valid ones, on a real hub (JupyterHub + Docker).

The e2e site plus ``e2e-broken``, whose project.yaml names an isolation that does not exist
(a value with markup in it, so the page must escape it). Proven here on the real hub:
- a member of the valid projects gets the spawn form, starts one of them from the form, and
  sees nothing of the broken project (no name, no error, no hint that one was skipped);
- a request for the broken project by name is refused before anything is created, without
  its error;
- the admin's spawn form lists the broken project with its error, escaped;
- the hub log names the skipped project and the error.
"""

from __future__ import annotations

import html
import time

import pytest

from tests.e2e.hubtools import ADMIN_PASSWORD, PASSWORD

pytestmark = pytest.mark.e2e

BROKEN = "e2e-broken"
MARKUP = "<script>alert(1)</script>"


@pytest.fixture(scope="module", autouse=True)
def broken_project(site):
    """Write the invalid project beside the site's valid ones (read at each form and spawn)."""
    folder = site / "environments" / BROKEN
    folder.mkdir()
    (folder / "project.yaml").write_text(
        f"name: {BROKEN}\nmembers: {{users: [alice], groups: [everyone]}}\n"
        f"isolation: '{MARKUP}'\n")
    return folder


def spawn_page(hub, user: str, password: str) -> str:
    client = hub.login(user, password)
    try:
        page = client.get("/hub/spawn")
    finally:
        client.close()
    assert page.status_code == 200, page.text[:2000]
    return page.text


def test_a_member_sees_nothing_of_it_and_starts_another_project_from_the_form(hub, docker_api):
    page = spawn_page(hub, "alice", PASSWORD)
    assert 'value="e2e-alpha/dev"' in page, page  # the form works for the valid projects
    assert BROKEN not in page and "isolation" not in page and "Skipped" not in page, page
    assert "lockstep-invalid" not in page and "alert(1)" not in page
    client = hub.login("alice", PASSWORD)
    try:
        posted = client.post("/hub/spawn/alice", data={"target": "e2e-alpha/dev",
                                                       "_xsrf": client.headers["X-XSRFToken"]})
    finally:
        client.close()
    assert posted.status_code in (200, 302), posted.text[:2000]
    deadline = time.monotonic() + 300
    while not (hub.server("alice") or {}).get("ready") and time.monotonic() < deadline:
        assert hub.server("alice"), f"the spawn from the form failed:\n{hub.log_tail()}"
        time.sleep(0.2)
    server = hub.server("alice")
    assert server and server["ready"], server
    assert server["user_options"] == {"project": "e2e-alpha", "stage": "dev"}
    labels = docker_api.inspect_container("lockstep-alice")["Config"]["Labels"]
    assert labels["org.lockstep.project"] == "e2e-alpha"
    hub.stop_server("alice")


def test_a_request_for_it_is_refused_without_its_error_and_starts_nothing(hub, docker_api):
    response = hub.api("POST", "/users/bob/server", {"project": BROKEN})
    assert response.status_code == 404, response.text
    message = response.json()["message"]
    assert repr(BROKEN) in message and "e2e-alpha" in message, message  # the usual 404
    assert "isolation" not in message and "alert(1)" not in message, message
    assert not docker_api.containers(all=True, filters={"name": "lockstep-bob"})
    assert not hub.server("bob")


def test_the_admin_sees_it_on_the_form_with_its_error_escaped(hub):
    page = spawn_page(hub, "admin", ADMIN_PASSWORD)
    assert 'class="alert alert-warning lockstep-invalid"' in page, page
    assert f"<code>{BROKEN}</code>: " in page and "key &#x27;isolation&#x27;" in page, page
    assert html.escape(MARKUP) in page and MARKUP not in page, page
    assert 'value="e2e-alpha/dev"' in page  # and the valid projects are offered as before


def test_the_hub_log_names_the_skipped_project(hub):
    log = hub.log_path.read_text(errors="replace")
    assert f"lockstep: project {BROKEN} is skipped: " in log
    assert "key 'isolation'" in log
