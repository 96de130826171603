"""Per-user logins on a real hub: one user's login or token never acts as another user.

A real JupyterHub (subprocess, ``spawner.docker.hubconfig.configure`` with
``passwords_file``: NativeAuthenticator with users pre-created, one password each), a real
proxy, a real engine. bob's server runs (e2e-alpha, through group alpha-team); alice logs in
through the form with her own password and then, with her cookie and with a token she made
herself, tries to start, stop and read bob's server: every attempt is refused and bob's
server keeps running. alice's password does not log in as bob, bob's not as alice
(issue 11, "Must show": logged in as one user, the login and the REST API refuse to act as
another user).
"""

from __future__ import annotations

import json
import secrets

import httpx
import pytest

from tests.e2e.conftest import cleanup_docker
from tests.e2e.hubtools import ADMIN_PASSWORD, PASSWORD, Hub

pytestmark = pytest.mark.e2e
PROJECT = {"project": "e2e-alpha", "stage": "dev"}


@pytest.fixture(scope="module")
def native_hub(site, e2e_image, docker_api, request):
    passwords = {u: secrets.token_urlsafe(12) for u in ("alice", "bob", "carol", "admin")}
    path = site / "passwords.json"
    path.write_text(json.dumps(passwords))
    path.chmod(0o600)
    cleanup_docker(docker_api)
    hub = Hub(site, e2e_image.registry)
    config = site / "jupyterhub_config.py"
    text = config.read_text().replace(
        f"password={PASSWORD!r}, admin_password={ADMIN_PASSWORD!r},",
        f"passwords_file={str(path)!r},")
    assert "passwords_file=" in text
    config.write_text(text)
    hub.start()
    yield hub, passwords
    if request.session.testsfailed:
        print(f"\n----- hub log (tail) -----\n{hub.log_tail()}")
    hub.stop()
    cleanup_docker(docker_api)


def form_login(url: str, user: str, password: str) -> httpx.Client | None:
    """A client holding the login cookie, or None when the hub's form refused."""
    client = httpx.Client(base_url=url, timeout=60)
    client.get("/hub/login").raise_for_status()
    xsrf = client.cookies.get("_xsrf", path="/hub/")
    done = client.post("/hub/login", data={"username": user, "password": password,
                                           "_xsrf": xsrf})
    if done.status_code == 302 and "/hub/login" not in done.headers.get("location", ""):
        client.headers["X-XSRFToken"] = client.cookies.get("_xsrf", path="/hub/") or xsrf
        return client
    client.close()
    return None


def test_a_users_login_and_token_cannot_act_as_another_user(native_hub):
    hub, passwords = native_hub
    for user, secret in (("bob", passwords["alice"]), ("alice", passwords["bob"]),
                         ("admin", passwords["alice"]), ("mallory", passwords["alice"]),
                         ("alice", passwords["alice"] + "x")):
        assert form_login(hub.url, user, secret) is None, f"{user} got in with a wrong password"
    assert httpx.get(f"{hub.url}/hub/signup").status_code == 404, "sign-up must be off"

    response, _ = hub.spawn("bob", PROJECT)
    assert response.status_code in (201, 202), response.text
    bob_server = hub.server_url("bob")
    alice = form_login(hub.url, "alice", passwords["alice"])
    assert alice is not None, hub.log_tail()
    try:
        assert alice.get("/hub/api/user").json()["name"] == "alice"  # the cookie works
        made = alice.post("/hub/api/users/alice/tokens", json={"note": "isolation test"})
        assert made.status_code == 201, made.text
        token = {"Authorization": f"token {made.json()['token']}"}
        assert alice.post("/hub/api/users/bob/tokens", json={}).status_code in (403, 404)
        for who, client, headers in (("cookie", alice, {}),
                                     ("token", httpx.Client(base_url=hub.url), token)):
            for method, path in (("POST", "/hub/api/users/bob/server"),
                                 ("POST", "/hub/api/users/bob/servers/other"),
                                 ("DELETE", "/hub/api/users/bob/server"),
                                 ("GET", "/hub/api/users/bob"),
                                 ("GET", "/hub/api/users/bob/tokens")):
                got = client.request(method, path, headers=headers, json=PROJECT
                                     if method == "POST" else None)
                assert got.status_code in (403, 404), f"{who} {method} {path}: {got.status_code}"
            for path in ("api/contents", "api/kernels", "api/status"):
                got = client.get(f"{bob_server}{path}", headers=headers, follow_redirects=True)
                assert got.status_code == 403 or "/hub/login" in str(got.url), \
                    f"{who} read bob's {path}: {got.status_code} {got.text[:200]}"
                assert '"content"' not in got.text and '"started"' not in got.text
        own = httpx.get(f"{hub.url}/hub/api/users/alice", headers=token)
        assert own.status_code == 200  # the token itself is good: the refusals are about bob
    finally:
        alice.close()
    server = hub.server("bob")
    assert server and server.get("ready"), "bob's server must still run"
    hub.stop_server("bob")
