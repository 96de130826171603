"""Collision-free names (issue 11, finding 5): homes, claims, containers, services, jobs."""

from __future__ import annotations

import itertools

import pytest

from spawner.docker import jobs
from spawner.docker.ownership import NotOurs, leftover_verdict
from spawner.docker.render import server_home_volume
from spawner.kube.render import home_claim
from spawner.labels import KIND, MANAGED, PROJECT, SERVER_NAME, USER
from spawner.launch.spec import home_volume, safe_slug
from spawner.services.spec import container_name

PAIRS = [("ml", "team-bob"), ("ml-team", "bob"), ("ml", "team_bob"), ("ml-team-bob", "x"),
         ("a", "b-c-d"), ("a-b", "c-d"), ("a-b-c", "d")]


def server_container(user: str, server: str = "") -> str:
    """LockstepDockerSpawner's default object_name (prefix ``lockstep``)."""
    name = f"lockstep-{safe_slug(user)}"
    return f"{name}--{safe_slug(server)}" if server else name


def test_exact_names():
    assert home_volume("ml", "team-bob") == "lockstep-home-ml_team-bob"
    assert home_volume("ml-team", "bob") == "lockstep-home-ml-team_bob"
    assert home_claim("ml", "team-bob") == "lockstep-home-ml.team-bob"
    assert home_claim("ml-team", "bob", "gpu") == "lockstep-home-ml-team.bob.gpu"
    assert container_name("forecast", 0) == "lockstep-svc_forecast_0"
    assert jobs.container_name("forecast", "abc") == "lockstep-job_forecast_abc"


def test_colliding_project_and_user_names_get_different_homes():
    volumes = [home_volume(p, u) for p, u in PAIRS]
    volumes += [server_home_volume(p, u, s) for (p, u), s in itertools.product(PAIRS, "ab")]
    assert len(set(volumes)) == len(volumes)
    claims = [home_claim(p, u, s) for (p, u), s in itertools.product(PAIRS, ["", "a", "b"])]
    assert len(set(claims)) == len(claims)


def test_no_user_gets_a_service_or_job_container_name():
    users = ["svc-forecast-0", "svc_forecast_0", "job-forecast-abc", "svc-forecast-0-next",
             "Svc.Forecast.0", "alice"]
    servers = {server_container(u, s) for u in users for s in ("", "0", "next")}
    services = {container_name(p, i, suffix=x) for p in ("forecast", "svc-forecast")
                for i in range(3) for x in ("", "next")}
    assert not servers & services
    assert not servers & {jobs.container_name("forecast", "abc")}


def test_slugs_are_injective_even_for_hash_shaped_names():
    victim = "a_b"
    forged = safe_slug(victim)  # "a-b-<8 hex>": a name anyone may choose
    assert safe_slug(forged) != forged and safe_slug(forged) != safe_slug(victim)
    assert safe_slug("alice") == "alice" and safe_slug("team-bob") == "team-bob"
    assert all("_" not in safe_slug(v) and "." not in safe_slug(v)
               for v in ("a_b", "a.b", "A B", "x" * 60))


def labels(**over):
    base = {MANAGED: "true", USER: "alice", SERVER_NAME: "", PROJECT: "forecast"}
    return {"Id": "c1", "Config": {"Labels": {**base, **over}}}


def test_only_the_servers_own_leftover_is_removed():
    assert leftover_verdict(None, name="lockstep-alice", user="alice", server="") is False
    assert leftover_verdict(labels(), name="lockstep-alice", user="alice", server="") is True
    for info, why in ((labels(**{KIND: "service"}), "service of project 'forecast'"),
                      (labels(**{USER: "bob"}), "'bob', not 'alice'"),
                      (labels(**{SERVER_NAME: "gpu"}), "'gpu', not ''"),
                      ({"Id": "x", "Config": {"Labels": {}}}, "not 'true'")):
        with pytest.raises(NotOurs, match="left alone") as refused:
            leftover_verdict(info, name="lockstep-alice", user="alice", server="")
        assert why in str(refused.value) and "docker inspect lockstep-alice" in str(refused.value)
