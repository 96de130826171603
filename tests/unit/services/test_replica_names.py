"""A container under a replica's name is the replica only when its labels say so."""

from __future__ import annotations

import docker.errors
import pytest

from spawner.services.deployer import current_replica, legacy_name
from spawner.services.spec import ServiceError, container_name


class Engine:
    """The slice of docker.APIClient ``current_replica`` reads: containers by name."""

    def __init__(self, **by_name: dict):
        self.by_name = by_name

    def inspect_container(self, name: str) -> dict:
        if name not in self.by_name:
            raise docker.errors.NotFound(f"No such container: {name}")
        return self.by_name[name]


def labelled(**labels) -> dict:
    return {"Id": "c1", "Config": {"Labels": labels}}


SERVICE = {"org.lockstep.managed": "true", "org.lockstep.kind": "service",
           "org.lockstep.project": "forecast"}


def test_the_replica_by_its_name_or_its_pre_0_2_name():
    assert current_replica(Engine(), "forecast", 0) is None
    found = labelled(**SERVICE)
    assert current_replica(Engine(**{container_name("forecast", 0): found}), "forecast", 0) \
        is found
    old = Engine(**{legacy_name("forecast", 0): found})
    assert legacy_name("forecast", 0) == "lockstep-svc-forecast-0"
    assert current_replica(old, "forecast", 0) is found  # adopted, then rolled away


def test_a_users_server_under_the_old_name_is_not_a_replica():
    server = labelled(**{"org.lockstep.managed": "true", "org.lockstep.user": "svc-forecast-0",
                         "org.lockstep.project": "forecast"})
    assert current_replica(Engine(**{"lockstep-svc-forecast-0": server}), "forecast", 0) is None


def test_a_foreign_container_under_the_new_name_is_refused_by_name():
    other = labelled(**{**SERVICE, "org.lockstep.project": "other"})
    with pytest.raises(ServiceError, match="not a service replica of 'forecast'") as refused:
        current_replica(Engine(**{container_name("forecast", 0): other}), "forecast", 0)
    assert "docker rename lockstep-svc_forecast_0" in str(refused.value)
