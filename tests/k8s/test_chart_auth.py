"""The chart's login (issue 11, finding 1): OpenID Connect through oauthenticator's
GenericOAuthenticator, its client secret in a Secret, never in a ConfigMap; values, schema
and rendered objects strictly validated; the hub config the chart renders logs people in as
the identity provider says, each as themselves, against a real (loopback) OAuth provider."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
from urllib.parse import parse_qs

import pytest
import yaml
from tornado.httpserver import HTTPServer
from tornado.web import Application, HTTPError, RequestHandler

from tests.k8s.hubload import load_hub
from tests.k8s.k8s_helpers import CHART, by_kind, find, helm_template, validate_strictly

DEFAULT = CHART / "examples" / "default.yaml"
SECRET_VALUE = "s3cret-client-value-1234"


def hub_env(docs) -> dict:
    (hub,) = find(docs, "Deployment", "-hub")["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in hub["env"]}


def template(helm3, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([helm3, "template", "r", str(CHART), "-f", str(DEFAULT), *extra],
                          capture_output=True, text=True, timeout=120)


def test_oauth_secret_comes_from_the_sites_secret_and_no_password_is_left(helm3):
    docs = helm_template(helm3, DEFAULT)
    validate_strictly(docs)
    env = hub_env(docs)
    assert env["OAUTH_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "lockstep-oauth", "key": "client-secret"}
    assert not {"LOCKSTEP_USER_PASSWORD", "LOCKSTEP_ADMIN_PASSWORD"} & set(env)
    secret = find(docs, "Secret", "-secret")["data"]
    assert not {"user-password", "admin-password", "oauth-client-secret"} & set(secret)
    values = json.loads(find(docs, "ConfigMap", "-hub")["data"]["values.json"])
    assert values["hub"]["auth"]["type"] == "oauth"
    assert set(values["hub"]["auth"]["oauth"]) >= {"clientId", "authorizeUrl", "callbackUrl"}
    assert not {"clientSecret", "existingSecret"} & set(values["hub"]["auth"]["oauth"])


def test_a_client_secret_value_goes_into_the_charts_secret_only(helm3):
    proc = template(helm3, "--set", "hub.auth.oauth.existingSecret.name=",
                    "--set", f"hub.auth.oauth.clientSecret={SECRET_VALUE}")
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    validate_strictly(docs)
    secret = find(docs, "Secret", "-secret")
    assert base64.b64decode(secret["data"]["oauth-client-secret"]).decode() == SECRET_VALUE
    assert hub_env(docs)["OAUTH_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": "r-lockstep-secret", "key": "oauth-client-secret"}
    for doc in docs:
        if doc["kind"] != "Secret":
            assert SECRET_VALUE not in json.dumps(doc), f"{doc['kind']} holds the secret"
    assert by_kind(docs, "ConfigMap")


@pytest.mark.parametrize(("setting", "message"), [
    ("hub.auth.oauth.clientId=", "hub.auth.oauth.clientId is required"),
    ("hub.auth.oauth.tokenUrl=", "hub.auth.oauth.tokenUrl is required"),
    ("hub.auth.oauth.existingSecret.name=", "needs the client secret"),
    ("hub.auth.type=shared-password", "hub.auth.type"),
    ("hub.auth.oauth.authorizeUrl=http://id.example.com/auth", "authorizeUrl"),
    ("hub.auth.oauth.password=x", "password"),
])
def test_incomplete_or_weak_login_settings_are_refused_by_name(helm3, setting, message):
    proc = template(helm3, "--set", setting)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_custom_login_sets_no_authenticator_and_no_secret_env(helm3):
    proc = template(helm3, "--set", "hub.auth.type=custom")
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert "OAUTH_CLIENT_SECRET" not in hub_env(docs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PEOPLE = {"code-alice": ("tok-alice", {"preferred_username": "alice", "groups": ["lab"]}),
          "code-bob": ("tok-bob", {"preferred_username": "bob", "groups": ["lab"]}),
          "code-eve": ("tok-eve", {"preferred_username": "eve", "groups": ["other"]})}


class Token(RequestHandler):
    def post(self):
        form = parse_qs(self.request.body.decode())
        auth = self.request.headers.get("Authorization", "")
        secret = base64.b64decode(auth.split()[-1]).decode().split(":", 1)[-1] if auth else \
            form.get("client_secret", [""])[0]
        if secret != SECRET_VALUE:
            raise HTTPError(401)
        code = (form.get("code") or [""])[0]
        if code not in PEOPLE:
            raise HTTPError(400)
        self.write({"access_token": PEOPLE[code][0], "token_type": "Bearer"})


class UserInfo(RequestHandler):
    def get(self):
        token = self.request.headers.get("Authorization", "").removeprefix("Bearer ")
        for access, info in PEOPLE.values():
            if access == token:
                self.write(info)
                return
        raise HTTPError(401)


@pytest.fixture
async def provider():
    """A loopback OAuth 2 provider on the test's loop: /token (checks the client secret and
    the code), /userinfo (who the bearer token belongs to)."""
    port = free_port()
    server = HTTPServer(Application([("/token", Token), ("/userinfo", UserInfo)]))
    server.listen(port, "127.0.0.1")
    yield f"http://127.0.0.1:{port}"
    server.stop()


class Handler:
    """The slice of the hub's OAuth callback handler that oauthenticator reads."""

    def __init__(self, code: str):
        from oauthenticator.oauth2 import _serialize_state

        self.code, self.state = code, _serialize_state({"code_verifier": "v" * 43})

    def get_argument(self, name, default=None):
        return self.code if name == "code" else default

    def get_state_cookie(self):
        return self.state


async def test_the_rendered_hub_logs_each_person_in_as_the_provider_says(
        helm3, tmp_path, provider, monkeypatch):
    from oauthenticator.generic import GenericOAuthenticator

    site = yaml.safe_load(DEFAULT.read_text())
    site["hub"]["auth"]["oauth"]["allowedGroups"] = ["lab"]
    site["hub"]["config"]["Authenticator"]["allowed_users"] = []  # the group decides
    values = tmp_path / "v.yaml"
    values.write_text(yaml.safe_dump(site))
    app, _ = load_hub(tmp_path, values, helm3)
    assert app.config.JupyterHub.authenticator_class == "generic-oauth"
    config = app.config
    config.GenericOAuthenticator.token_url = f"{provider}/token"  # the loopback provider
    config.GenericOAuthenticator.userdata_url = f"{provider}/userinfo"
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", SECRET_VALUE)  # as the Secret sets it
    auth = GenericOAuthenticator(config=config)
    assert auth.client_secret == SECRET_VALUE and auth.client_id == "lockstep-hub"
    assert auth.username_claim == "preferred_username"

    alice = await auth.get_authenticated_user(Handler("code-alice"), None)
    assert alice["name"] == "alice"
    bob = await auth.get_authenticated_user(Handler("code-bob"), None)
    assert bob["name"] == "bob"
    assert await auth.get_authenticated_user(Handler("code-eve"), None) is None  # group
    with pytest.raises(Exception, match="400|Bad Request"):
        await auth.get_authenticated_user(Handler("code-forged"), None)
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", "wrong")
    wrong = GenericOAuthenticator(config=config)
    with pytest.raises(Exception, match="401|Unauthorized"):
        await wrong.get_authenticated_user(Handler("code-alice"), None)
