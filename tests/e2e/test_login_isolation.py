"""On a real hub: one user's login or token never acts as another user; names never collide.

A real JupyterHub (subprocess, ``spawner.docker.hubconfig.configure`` with
``passwords_file``: NativeAuthenticator with users pre-created, one password each), a real
proxy, a real engine. B's server runs; A logs in through the form with A's own password
and then, with A's cookie and with a token A made, tries to start, stop and read B's
server: every attempt is refused and B's server keeps running. A's password does not log
in as B, B's not as A (issue 11, "Must show": logged in as one user, the login and the REST
API refuse to act as another user).

Project ``<p>`` + user ``team-<b>`` and project ``<p>-team`` + user ``<b>`` get their own
home volume and container; a hub user named like a service's (pre-0.2) container,
``svc-<p>-0``, cannot remove it (issue 11, finding 5). Every name carries this run's id, so
a colleague's e2e run on the same engine never meets these users, projects or containers.
"""

from __future__ import annotations

import json
import secrets
import time

import httpx
import pytest

from tests.e2e.hubtools import ADMIN_PASSWORD, PASSWORD, RUN_ID, Hub, run_code
from tests.support.engine import TEST_LABELS

pytestmark = pytest.mark.e2e
P = f"i{RUN_ID[:6]}"  # project names: P and P-team (both once gave one home volume)
A, B = f"a{RUN_ID[:6]}", f"b{RUN_ID[:6]}"
TEAM_B = f"team-{B}"
SERVICE_LIKE = f"svc-{P}-0"  # lockstep-svc-<P>-0: the container name of P's old replica 0
PROJECTS = {P: [TEAM_B, SERVICE_LIKE], f"{P}-team": [A, B]}
TEAM = {"project": f"{P}-team", "stage": "dev"}


def add_projects(site, e2e_image) -> None:
    from spawner.image.registry import RegistryClient, copy_image

    for name, users in PROJECTS.items():
        (site / "environments" / name).mkdir(parents=True, exist_ok=True)
        (site / "environments" / name / "project.yaml").write_text(
            f"name: {name}\nmembers: {{users: [{', '.join(users)}]}}\n"
            "workspace: {enabled: false}\nresources: {cpu: 1, memory: 1G}\n")
    client = RegistryClient.for_host(e2e_image.registry, insecure_registries=("127.0.0.1",))
    with client:
        for name in PROJECTS:
            copy_image(client, e2e_image.repo, client, f"lockstep/{name}", e2e_image.digest,
                       tags=("dev",), workdir=site)


def cleanup(docker_api) -> None:
    """What this run made: its containers (by run id), its projects' volumes and networks."""
    for container in docker_api.containers(
            all=True, filters={"label": f"org.lockstep-e2e.run={RUN_ID}"}):
        docker_api.remove_container(container["Id"], force=True)
    for project in PROJECTS:
        for container in docker_api.containers(
                all=True, filters={"label": f"org.lockstep.project={project}"}):
            docker_api.remove_container(container["Id"], force=True)
        select = {"label": f"org.lockstep.project={project}"}
        for volume in (docker_api.volumes(filters=select) or {}).get("Volumes") or []:
            docker_api.remove_volume(volume["Name"], force=True)
        for network in docker_api.networks(filters=select):
            docker_api.remove_network(network["Id"])


@pytest.fixture(scope="module")
def native_hub(site, e2e_image, docker_api, request):
    users = (A, B, TEAM_B, SERVICE_LIKE, "admin")
    passwords = {u: secrets.token_urlsafe(12) for u in users}
    path = site / "passwords.json"
    path.write_text(json.dumps(passwords))
    path.chmod(0o600)
    add_projects(site, e2e_image)
    hub = Hub(site, e2e_image.registry)
    config = site / "jupyterhub_config.py"
    text = config.read_text().replace(
        f"password={PASSWORD!r}, admin_password={ADMIN_PASSWORD!r},",
        f"passwords_file={str(path)!r},")
    assert "passwords_file=" in text
    text += f"c.Authenticator.allowed_users |= {set(users)!r}\n"
    config.write_text(text)
    hub.start()
    yield hub, passwords
    if request.session.testsfailed:
        print(f"\n----- hub log (tail) -----\n{hub.log_tail()}")
    hub.stop()
    cleanup(docker_api)


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
    assert done.status_code in (200, 403), f"the login form failed: {done.status_code}"
    client.close()
    return None


def test_a_users_login_and_token_cannot_act_as_another_user(native_hub):
    hub, passwords = native_hub
    for user, secret in ((B, passwords[A]), (A, passwords[B]), ("admin", passwords[A]),
                         ("mallory", passwords[A]), (A, passwords[A] + "x")):
        assert form_login(hub.url, user, secret) is None, f"{user} got in with a wrong password"
    assert httpx.get(f"{hub.url}/hub/signup").status_code == 404, "sign-up must be off"

    response, _ = hub.spawn(B, TEAM)
    assert response.status_code in (201, 202), response.text
    b_server = hub.server_url(B)
    alice = form_login(hub.url, A, passwords[A])
    assert alice is not None, hub.log_tail()
    try:
        assert alice.get("/hub/api/user").json()["name"] == A  # the cookie works
        assert alice.get("/hub/change-password").status_code == 200  # NativeAuth's own page
        made = alice.post(f"/hub/api/users/{A}/tokens", json={"note": "isolation test"})
        assert made.status_code == 201, made.text
        token = {"Authorization": f"token {made.json()['token']}"}
        assert alice.post(f"/hub/api/users/{B}/tokens", json={}).status_code in (403, 404)
        for who, client, headers in (("cookie", alice, {}),
                                     ("token", httpx.Client(base_url=hub.url), token)):
            for method, path in (("POST", f"/hub/api/users/{B}/server"),
                                 ("POST", f"/hub/api/users/{B}/servers/other"),
                                 ("DELETE", f"/hub/api/users/{B}/server"),
                                 ("GET", f"/hub/api/users/{B}"),
                                 ("GET", f"/hub/api/users/{B}/tokens")):
                got = client.request(method, path, headers=headers,
                                     json=TEAM if method == "POST" else None)
                assert got.status_code in (403, 404), f"{who} {method} {path}: {got.status_code}"
            for path in ("api/contents", "api/kernels", "api/status"):
                got = client.get(f"{b_server}{path}", headers=headers, follow_redirects=True)
                assert got.status_code == 403 or "/hub/login" in str(got.url), \
                    f"{who} read {B}'s {path}: {got.status_code} {got.text[:200]}"
                assert '"content"' not in got.text and '"started"' not in got.text
        own = httpx.get(f"{hub.url}/hub/api/users/{A}", headers=token)
        assert own.status_code == 200  # the token itself is good: the refusals are about B
    finally:
        alice.close()
    server = hub.server(B)
    assert server and server.get("ready"), f"{B}'s server must still run"
    hub.stop_server(B)


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
    hub.stop_server(B)
    for user, project in ((TEAM_B, P), (B, f"{P}-team")):
        response, _ = hub.spawn(user, {"project": project, "stage": "dev"})
        assert response.status_code in (201, 202), response.text
    team_b, b = home_of(docker_api, TEAM_B, P), home_of(docker_api, B, f"{P}-team")
    assert team_b[1] == f"lockstep-home-{P}_{TEAM_B}" and b[1] == f"lockstep-home-{P}-team_{B}"
    assert team_b[0] != b[0]
    wrote = run_code(hub, TEAM_B, "open('/home/jovyan/mine.txt', 'w').write('x')")
    assert wrote["error"] is None, wrote
    seen = run_code(hub, B, "import os; print(sorted(os.listdir('/home/jovyan')))")
    assert seen["error"] is None and "mine.txt" not in seen["stdout"], seen
    for user in (TEAM_B, B):
        hub.stop_server(user)


def test_a_user_named_like_a_service_cannot_touch_it(native_hub, docker_api, e2e_image):
    hub, _ = native_hub
    ref = f"{e2e_image.registry}/{e2e_image.repo}@{e2e_image.digest}"
    docker_api.pull(ref)
    legacy = f"lockstep-{SERVICE_LIKE}"  # = lockstep-svc-<P>-0, the old service name
    service = docker_api.create_container(
        ref, command=["-c", "import time; time.sleep(600)"], name=legacy,
        entrypoint=["/opt/env/bin/python"],
        labels={"org.lockstep.managed": "true", "org.lockstep.kind": "service",
                "org.lockstep.project": P, **TEST_LABELS,
                "org.lockstep-e2e.run": RUN_ID})["Id"]
    try:
        docker_api.start(service)
        response = hub.api("POST", f"/users/{SERVICE_LIKE}/server",
                           {"project": P, "stage": "dev"})
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
