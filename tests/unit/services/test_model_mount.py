"""A promoted model in a service: bound read-only at /opt/model, named in the env and the
labels, and absent when the stage holds no model (the body is then as before)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from spawner.launch.spec import ImageRef
from spawner.project import load_project
from spawner.services.spec import ModelMount, docker_body, service_launch_spec

ROOT = Path(__file__).resolve().parents[3]
DIGEST = "sha256:" + "ab" * 32
MODEL = "sha256:" + "cd" * 32
IMAGE = ImageRef(f"127.0.0.1:5000/lockstep/forecast@{DIGEST}", lock_hash="sha256:" + "f" * 64)
FORECAST = load_project(ROOT / "environments" / "forecast")
SOURCES = {"sales": "/srv/data/sales"}


def spec(model=None):
    return service_launch_spec(project=FORECAST, image=IMAGE, stage="prod",
                               data_sources=SOURCES, model=model)


def test_the_model_is_a_read_only_bind_with_its_digest_in_env_and_labels():
    s = spec(ModelMount(MODEL, "/var/lib/lockstep/models/sha256-" + "cd" * 32))
    body = docker_body(s, service=FORECAST.service, index=0)
    (mount,) = [m for m in body["HostConfig"]["Mounts"] if m["Target"] == "/opt/model"]
    assert (mount["Type"], mount["ReadOnly"], mount["Source"]) == (
        "bind", True, "/var/lib/lockstep/models/sha256-" + "cd" * 32)
    assert {"LOCKSTEP_MODEL_DIR=/opt/model", f"LOCKSTEP_MODEL_DIGEST={MODEL}"} <= set(body["Env"])
    assert body["Labels"]["org.lockstep.model-digest"] == MODEL


def test_without_a_model_nothing_changes():
    body = docker_body(spec(), service=FORECAST.service, index=0)
    assert "org.lockstep.model-digest" not in body["Labels"]
    assert not any(e.startswith("LOCKSTEP_MODEL") for e in body["Env"])
    assert "/opt/model" not in [m["Target"] for m in body["HostConfig"]["Mounts"]]


def test_the_forecast_server_reads_the_promoted_model_not_the_workspace():
    path = ROOT / "data" / "sales" / "serve.py"
    module_spec = importlib.util.spec_from_file_location("forecast_serve_model", path)
    serve = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(serve)
    given = "/workspace/model.json"
    assert serve.model_path(given, {}) == given
    assert serve.model_path(given, {"LOCKSTEP_MODEL_DIR": "/opt/model"}) == "/opt/model/model.json"
