"""Registry credentials the way Docker finds them: pull-secret file, credHelpers, credsStore.

The credential helper is a real executable on PATH (a small shell script speaking the
docker-credential-helpers protocol: the server on stdin, JSON on stdout), so the test runs
the same subprocess path the hub does.
"""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from traitlets.config import Config

from spawner.image.credentials import CredentialError, config_lookup, find_credentials
from spawner.image.registry import RegistryClient
from spawner.launch import stages
from spawner.settings import Lockstep

SECRET = "s3cr3t-token-value"


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def helper(tmp_path, monkeypatch) -> Path:
    """``docker-credential-fake``: knows ecr.test and gcr.test, logs every host it is asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "asked.log"
    script = bin_dir / "docker-credential-fake"
    script.write_text(f"""#!/bin/sh
[ "$1" = get ] || exit 3
read host
echo "$host" >> {log}
case "$host" in
  ecr.test) echo '{{"ServerURL":"ecr.test","Username":"AWS","Secret":"{SECRET}"}}' ;;
  gcr.test) echo '{{"ServerURL":"gcr.test","Username":"oauth2accesstoken","Secret":"g"}}' ;;
  broken.test) echo 'not json' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return log


def write(path: Path, config: dict) -> Path:
    path.write_text(json.dumps(config))
    return path


def test_lookup_prefers_the_host_helper_then_the_store_then_auths():
    config = {"credHelpers": {"ecr.test": "ecr-login"}, "credsStore": "desktop",
              "auths": {"https://plain.test": {"auth": basic("u", "p")}}}
    assert config_lookup(config, "ecr.test") == ("ecr-login", None)
    assert config_lookup(config, "plain.test") == ("desktop", ("u", "p"))
    assert config_lookup({"auths": {"x.test": {"username": "a", "password": "b"}}},
                         "x.test") == (None, ("a", "b"))
    assert config_lookup({}, "x.test") == (None, None)


def test_cred_helpers_run_the_named_helper(helper, tmp_path):
    config = write(tmp_path / "config.json", {"credHelpers": {"ecr.test": "fake"}})
    assert find_credentials("ecr.test", config_path=config) == ("AWS", SECRET)
    assert helper.read_text().split() == ["ecr.test"]  # asked with the host, on stdin
    assert find_credentials("other.test", config_path=config) is None  # no helper for it


def test_creds_store_falls_back_to_auths_when_it_has_nothing(helper, tmp_path):
    config = write(tmp_path / "config.json", {
        "credsStore": "fake", "auths": {"plain.test": {"auth": basic("u", "p")}}})
    assert find_credentials("gcr.test", config_path=config) == ("oauth2accesstoken", "g")
    assert find_credentials("plain.test", config_path=config) == ("u", "p")
    assert find_credentials("none.test", config_path=config) is None


def test_pull_secret_file_comes_first_then_the_docker_config(helper, tmp_path):
    docker = write(tmp_path / "config.json", {"auths": {"a.test": {"auth": basic("d", "1")},
                                                        "b.test": {"auth": basic("d", "2")}}})
    secret = write(tmp_path / ".dockerconfigjson", {"auths": {"a.test": {"auth": basic("k", "3")}},
                                                    "credHelpers": {"ecr.test": "fake"}})
    found = [find_credentials(h, config_path=docker, auth_file=str(secret))
             for h in ("a.test", "b.test", "ecr.test")]
    assert found == [("k", "3"), ("d", "2"), ("AWS", SECRET)]


def test_broken_setups_name_the_fix_and_never_the_secret(helper, tmp_path):
    config = write(tmp_path / "config.json", {"credHelpers": {"ecr.test": "missing",
                                                              "broken.test": "fake"}})
    with pytest.raises(CredentialError, match="docker-credential-missing is not on PATH"):
        find_credentials("ecr.test", config_path=config)
    with pytest.raises(CredentialError, match="other than JSON") as exc:
        find_credentials("broken.test", config_path=config)
    assert SECRET not in str(exc.value)
    with pytest.raises(CredentialError, match="registry_auth_file .* could not be read"):
        find_credentials("a.test", config_path=config, auth_file=str(tmp_path / "absent"))
    assert find_credentials("a.test", config_path=tmp_path / "absent.json") is None


def test_stage_reader_uses_the_auth_file_and_helpers(helper, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty"))
    secret = write(tmp_path / ".dockerconfigjson", {"credHelpers": {"ecr.test": "fake"}})
    config = Config()
    config.Lockstep.registry = "ecr.test/lockstep"
    config.Lockstep.registry_auth_file = str(secret)
    settings = Lockstep(config=config)
    assert settings.registry_auth_file == str(secret)
    with stages._Reader(settings, "ecr.test/lockstep/forecast") as reader:
        assert reader.client.client.auth.credentials == ("AWS", SECRET)
    quick = stages._quick_client(settings, "ecr.test")
    assert quick.client.auth.credentials == ("AWS", SECRET)
    with RegistryClient.for_host("ecr.test") as plain:  # without the file: no credentials
        assert plain.client.auth.credentials is None
