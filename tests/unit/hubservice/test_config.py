"""service_config: the managed service entry, its roles, users' access, settings handed on."""

from __future__ import annotations

import json

from traitlets.config import Config

from spawner.docker.hubconfig import configure
from spawner.hubservice.app import settings_from_env
from spawner.hubservice.config import service_config


def test_service_entry_roles_and_user_access():
    c = Config()
    c.Lockstep.registry = "reg.example/ds"
    c.Lockstep.stages = ["dev", "qa", "prod"]
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "read:groups"]}]
    entry = service_config(c, port=10101)
    assert entry["url"] == "http://127.0.0.1:10101"
    assert entry["command"][1:] == ["-m", "spawner.hubservice"]
    assert [s["name"] for s in c.JupyterHub.services] == ["lockstep"]
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["lockstep-service"]["services"] == ["lockstep"]
    assert set(roles["lockstep-service"]["scopes"]) == {"list:users", "read:users",
                                                        "read:servers"}
    assert set(roles["user"]["scopes"]) == {"self", "read:groups",
                                            "access:services!service=lockstep"}
    settings = json.loads(entry["environment"]["LOCKSTEP_SERVICE_SETTINGS"])
    assert settings == {"registry": "reg.example/ds", "stages": ["dev", "qa", "prod"]}


def test_calling_twice_keeps_one_entry_and_a_free_port():
    c = Config()
    service_config(c)
    service_config(c)
    assert len(c.JupyterHub.services) == 1
    assert int(c.JupyterHub.services[0]["url"].rsplit(":", 1)[1]) > 0
    assert sum(r["name"] == "lockstep-service" for r in c.JupyterHub.load_roles) == 1


def test_the_docker_hub_config_includes_the_service_beside_the_culler(tmp_path):
    c = Config()
    configure(c, environments_dir=str(tmp_path), data_roots=[str(tmp_path)],
              registry="127.0.0.1:5000/lockstep", service_port=12345)
    names = [s["name"] for s in c.JupyterHub.services]
    assert names == ["idle-culler", "lockstep"]
    env = c.JupyterHub.services[1]["environment"]
    settings = settings_from_env({"LOCKSTEP_SERVICE_SETTINGS": env["LOCKSTEP_SERVICE_SETTINGS"]})
    assert settings.registry == "127.0.0.1:5000/lockstep"
    assert settings.environments_dir == str(tmp_path)
