"""On a real hub: one user's login or token never acts as another user; names never collide.

A real JupyterHub (subprocess, ``spawner.docker.hubconfig.configure`` with
``passwords_file``: NativeAuthenticator with users pre-created, one password each), a real
proxy, a real engine. bob's server runs (e2e-alpha, through group alpha-team); alice logs in
through the form with her own password and then, with her cookie and with a token she made
herself, tries to start, stop and read bob's server: every attempt is refused and bob's
server keeps running. alice's password does not log in as bob, bob's not as alice
(issue 11, "Must show": logged in as one user, the login and the REST API refuse to act as
another user). Project ``iso`` + user ``team-bob`` and project ``iso-team`` + user ``bob``
get their own home volume and container; a hub user named like a service's (pre-0.2)
container cannot remove it (issue 11, finding 5).
"""

from __future__ import annotations

import json
import secrets
import time

import httpx
import pytest

from tests.e2e.conftest import cleanup_docker
from tests.e2e.hubtools import ADMIN_PASSWORD, PASSWORD, RUN_ID, Hub, run_code

pytestmark = pytest.mark.e2e
PROJECT = {"project": "e2e-alpha", "stage": "dev"}


NAME_PROJECTS = {"iso": "team-bob", "iso-team": "bob"}  # both once shared a home volume
SERVICE_LIKE = "svc-e2e-alpha-0"  # a hub user named like e2e-alpha's service (old naming)


def add_name_projects(site, e2e_image) -> None:
    """Projects ``iso`` (user team-bob) and ``iso-team`` (user bob), each with a dev image."""
    from spawner.image.registry import RegistryClient, copy_image

    for name, user in NAME_PROJECTS.items():
        (site / "environments" / name).mkdir(parents=True, exist_ok=True)
        (site / "environments" / name / "project.yaml").write_text(
            f"name: {name}\nmembers: {{users: [{user}]}}\nworkspace: {{enabled: false}}\n"
            "resources: {cpu: 1, memory: 1G}\n")
    client = RegistryClient.for_host(e2e_image.registry, insecure_registries=("127.0.0.1",))
    with client:
        for name in NAME_PROJECTS:
            copy_image(client, e2e_image.repo, client, f"lockstep/{name}", e2e_image.digest,
                       tags=("dev",), workdir=site)


@pytest.fixture(scope="module")
def native_hub(site, e2e_image, docker_api, request):
    users = ("alice", "bob", "carol", "admin", "team-bob", SERVICE_LIKE)
    passwords = {u: secrets.token_urlsafe(12) for u in users}
    path = site / "passwords.json"
    path.write_text(json.dumps(passwords))
    path.chmod(0o600)
    add_name_projects(site, e2e_image)
    cleanup_docker(docker_api)
    hub = Hub(site, e2e_image.registry)
    config = site / "jupyterhub_config.py"
    text = config.read_text().replace(
        f"password={PASSWORD!r}, admin_password={ADMIN_PASSWORD!r},",
        f"passwords_file={str(path)!r},")
    assert "passwords_file=" in text
    text += (f"c.Authenticator.allowed_users |= {{'team-bob', {SERVICE_LIKE!r}}}\n"
             f"c.JupyterHub.load_groups['alpha-team']['users'].append({SERVICE_LIKE!r})\n")
    config.write_text(text)
    hub.start()
    yield hub, passwords
    if request.session.testsfailed:
        print(f"\n----- hub log (tail) -----\n{hub.log_tail()}")
    hub.stop()
    cleanup_docker(docker_api)
    for volume in (docker_api.volumes(filters={"label": "org.lockstep.managed=true"})
                   or {}).get("Volumes") or []:
        if (volume.get("Labels") or {}).get("org.lockstep.project") in NAME_PROJECTS:
            docker_api.remove_volume(volume["Name"], force=True)


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


def home_of(docker_api, user: str, project: str) -> tuple[str, str]:
    """(container name, home volume) of ``user``'s running server on ``project``."""
    found = docker_api.containers(filters={"label": [f"org.lockstep.user={user}",
                                                     f"org.lockstep.project={project}"]})
    assert len(found) == 1, found
    info = docker_api.inspect_container(found[0]["Id"])
    homes = [m["Name"] for m in info["Mounts"] if m["Destination"] == "/home/jovyan"]
    return info["Name"].lstrip("/"), homes[0]


def test_colliding_project_and_user_names_get_their_own_home_and_container(native_hub,
                                                                            docker_api):
    hub, _ = native_hub
    hub.stop_server("bob")
    for user, project in (("team-bob", "iso"), ("bob", "iso-team")):
        response, _ = hub.spawn(user, {"project": project, "stage": "dev"})
        assert response.status_code in (201, 202), response.text
    team_bob, bob = home_of(docker_api, "team-bob", "iso"), home_of(docker_api, "bob", "iso-team")
    assert team_bob[1] == "lockstep-home-iso_team-bob" and bob[1] == "lockstep-home-iso-team_bob"
    assert team_bob[0] != bob[0]
    wrote = run_code(hub, "team-bob", "open('/home/jovyan/mine.txt', 'w').write('team-bob')")
    assert wrote["error"] is None, wrote
    seen = run_code(hub, "bob", "import os; print(sorted(os.listdir('/home/jovyan')))")
    assert seen["error"] is None and "mine.txt" not in seen["stdout"], seen
    for user in ("team-bob", "bob"):
        hub.stop_server(user)


def test_a_user_named_like_a_service_cannot_touch_it(native_hub, docker_api, e2e_image):
    hub, _ = native_hub
    ref = f"{e2e_image.registry}/{e2e_image.repo}@{e2e_image.digest}"
    docker_api.pull(ref)
    legacy = f"lockstep-{SERVICE_LIKE}"  # = lockstep-svc-e2e-alpha-0, the old service name
    service = docker_api.create_container(
        ref, command=["python", "-c", "import time; time.sleep(600)"], name=legacy,
        labels={"org.lockstep.managed": "true", "org.lockstep.kind": "service",
                "org.lockstep.project": "e2e-alpha", "org.lockstep.test": "1",
                "org.lockstep-e2e.run": RUN_ID})["Id"]
    try:
        docker_api.start(service)
        response = hub.api("POST", f"/users/{SERVICE_LIKE}/server", PROJECT)
        deadline = time.monotonic() + 120
        while hub.server(SERVICE_LIKE) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert hub.server(SERVICE_LIKE) is None, "the spawn must fail"
        assert response.status_code in (201, 202, 409), response.text
        assert f"a container named {legacy} already exists and was not made by lockstep" \
            in hub.log_tail(400)
        state = docker_api.inspect_container(legacy)
        assert state["Id"] == service and state["State"]["Running"], "the service was touched"
    finally:
        docker_api.remove_container(service, force=True)
