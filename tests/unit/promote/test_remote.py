"""``lockstep promote/approve/rollback --hub``: the token, the request sent, and errors
for people (httpx's MockTransport stands in for the service)."""

from __future__ import annotations

import json

import httpx
import pytest

from spawner import cli
from spawner.promote.remote import HubService, RemoteError, read_token


def service(handler) -> HubService:
    return HubService("http://hub.example/", "secret-token",
                      transport=httpx.MockTransport(handler))


def test_the_token_comes_from_the_file_or_the_environment(tmp_path):
    (tmp_path / "t").write_text("abc\nignored\n")
    assert read_token(str(tmp_path / "t"), {}) == "abc"
    assert read_token(None, {"JUPYTERHUB_API_TOKEN": " xyz "}) == "xyz"
    with pytest.raises(RemoteError, match=r"set \$JUPYTERHUB_API_TOKEN or pass --token-file"):
        read_token(None, {})
    (tmp_path / "empty").write_text("")
    with pytest.raises(RemoteError, match="is empty"):
        read_token(str(tmp_path / "empty"), {})
    with pytest.raises(RemoteError, match="cannot read --token-file"):
        read_token(str(tmp_path / "missing"), {})


def test_a_call_sends_the_token_and_the_body_to_the_service_route():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(url=str(request.url), auth=request.headers["Authorization"],
                    body=json.loads(request.content))
        return httpx.Response(202, json={"outcome": "pending", "message": "waits"})

    assert service(handler).call("POST", "fore cast", "promote", {"to": "prod"})["outcome"] \
        == "pending"
    assert seen == {"url": "http://hub.example/services/lockstep/api/projects/fore%20cast/"
                           "promote", "auth": "token secret-token", "body": {"to": "prod"}}


def test_refusals_are_worded_for_people_and_never_show_the_token():
    def forbidden(request):
        return httpx.Response(403, json={"status": 403, "message": "bob may not approve"})

    with pytest.raises(RemoteError, match=r"refused \(403\): bob may not approve") as err:
        service(forbidden).call("POST", "p", "approve", {"request": "r"})
    assert "secret-token" not in str(err.value)
    with pytest.raises(RemoteError, match="no lockstep service at"):
        service(lambda r: httpx.Response(404, text="<html>")).call("GET", "p", "approvals")
    refused = service(lambda r: httpx.Response(409, json={"outcome": "refused",
                                                          "message": "gate"}))
    assert refused.call("POST", "p", "promote", {"to": "qa"})["outcome"] == "refused"

    def down(request):
        raise httpx.ConnectError("connection refused")

    with pytest.raises(RemoteError, match="cannot reach the hub at http://hub.example"):
        service(down).call("POST", "p", "promote", {"to": "qa"})


def test_the_cli_refuses_local_names_with_hub_and_needs_hub_for_approve(capsys, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "t")
    code = cli.main(["promote", "p", "--to", "qa", "--as", "mallory",
                     "--hub", "http://127.0.0.1:9"])
    assert code == 2 and "--as cannot be used with --hub" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["approve", "p", "r1"])
    assert "--hub" in capsys.readouterr().err
    code = cli.main(["rollback", "p", "--stage", "prod", "--hub", "http://127.0.0.1:9"])
    assert code == 2 and "cannot reach the hub at http://127.0.0.1:9" in capsys.readouterr().err
