"""The Docker body's log limits and recursive read-only data binds (issue 11, finding 8)."""

from __future__ import annotations

from pathlib import Path

from spawner.docker.render import LOG_CONFIG, DockerOptions, render_container
from spawner.launch.spec import ImageRef, build_launch_spec
from spawner.project import load_project

ROOT = Path(__file__).resolve().parents[3]
FORECAST = load_project(ROOT / "environments" / "forecast")
IMAGE = ImageRef("127.0.0.1:5000/lockstep/forecast@sha256:" + "ab" * 32)
SPEC = build_launch_spec(project=FORECAST, image=IMAGE, user="alice", stage="dev",
                         data_sources={"sales": "/srv/data/sales"})


def data_binds(body: dict) -> list[dict]:
    return [m for m in body["HostConfig"]["Mounts"] if m["Type"] == "bind"]


def test_logs_are_capped():
    log = render_container(SPEC)["HostConfig"]["LogConfig"]
    assert log == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}
    assert log == LOG_CONFIG and log is not LOG_CONFIG  # a copy, never the shared dict


def test_data_binds_are_forced_recursive_only_where_the_engine_can():
    (plain,) = data_binds(render_container(SPEC))
    assert plain["ReadOnly"] is True and "ReadOnlyForceRecursive" not in plain["BindOptions"]
    (forced,) = data_binds(render_container(SPEC, DockerOptions(recursive_read_only=True)))
    assert forced["ReadOnly"] is True
    assert forced["BindOptions"] == {"Propagation": "rprivate", "ReadOnlyForceRecursive": True}


def test_the_docstring_promises_no_private_user_namespace():
    import spawner.docker.render as render

    assert "IPC/PID/UTS/user namespaces" not in render.__doc__
    assert render_container(SPEC)["HostConfig"]["UsernsMode"] == ""
