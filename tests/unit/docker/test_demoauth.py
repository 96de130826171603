"""PrecreatedNativeAuthenticator: one password per user, users made from a 0600 file."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from spawner.docker.demoauth import PrecreatedNativeAuthenticator, read_passwords

PASSWORDS = {"alice": "alice-secret-1234", "bob": "bob-secret-5678"}


def write(path, data, mode=0o600):
    path.write_text(json.dumps(data))
    path.chmod(mode)
    return str(path)


def make(tmp_path, passwords_file):
    db = sessionmaker(bind=create_engine(f"sqlite:///{tmp_path}/hub.sqlite"))()
    return PrecreatedNativeAuthenticator(passwords_file=passwords_file,
                                         _deprecated_db_session=db,
                                         allowed_users={"alice", "bob"})


async def login(auth, user, password):
    return await auth.authenticate(None, {"username": user, "password": password})


async def test_each_user_logs_in_with_their_own_password_only(tmp_path):
    auth = make(tmp_path, write(tmp_path / "p.json", PASSWORDS))
    assert auth.enable_signup is False and auth.open_signup is False
    assert await login(auth, "alice", PASSWORDS["alice"]) == "alice"
    assert await login(auth, "bob", PASSWORDS["bob"]) == "bob"
    assert await login(auth, "bob", PASSWORDS["alice"]) is None
    assert await login(auth, "alice", PASSWORDS["bob"]) is None
    assert await login(auth, "mallory", PASSWORDS["alice"]) is None
    stored = auth.get_user("alice")
    assert stored.is_authorized and PASSWORDS["alice"].encode() not in stored.password


async def test_a_changed_password_survives_a_restart(tmp_path):
    path = write(tmp_path / "p.json", PASSWORDS)
    auth = make(tmp_path, path)
    auth.change_password("alice", "changed-by-alice-99")
    again = make(tmp_path, path)
    assert again.precreate(PASSWORDS) == []
    assert await login(again, "alice", "changed-by-alice-99") == "alice"
    assert await login(again, "alice", PASSWORDS["alice"]) is None


def test_unsafe_or_malformed_files_are_refused_naming_the_fix(tmp_path):
    with pytest.raises(ValueError, match="chmod 600"):
        read_passwords(write(tmp_path / "open.json", PASSWORDS, 0o644))
    with pytest.raises(ValueError, match="user name -> password"):
        read_passwords(write(tmp_path / "list.json", ["alice"]))
    with pytest.raises(ValueError, match="user name -> password"):
        read_passwords(write(tmp_path / "empty.json", {"alice": ""}))
    with pytest.raises(ValueError, match="scripts/demo.sh generates it"):
        read_passwords(str(tmp_path / "missing.json"))
    assert read_passwords(write(tmp_path / "ok.json", PASSWORDS)) == PASSWORDS


def test_hubconfig_sets_per_user_passwords_and_refuses_mixing_with_shared(tmp_path):
    from traitlets.config import Config

    from spawner.docker.hubconfig import configure

    c = Config()
    configure(c, environments_dir="/e", data_roots=["/d"], users={"g": ["alice"]},
              passwords_file="/s/passwords.json")
    assert c.JupyterHub.authenticator_class == (
        "spawner.docker.demoauth.PrecreatedNativeAuthenticator")
    assert c.PrecreatedNativeAuthenticator.passwords_file == "/s/passwords.json"
    assert c.PrecreatedNativeAuthenticator.enable_signup is False
    with pytest.raises(ValueError, match="not both"):
        configure(Config(), environments_dir="/e", data_roots=["/d"],
                  passwords_file="/s/p.json", password="shared-password")


def test_jupyterhubs_own_login_form_replaces_natives_broken_one(tmp_path):
    auth = make(tmp_path, write(tmp_path / "p.json", PASSWORDS))
    paths = [path for path, _ in auth.get_handlers(None)]
    assert "/login" not in paths and "/change-password" in paths
