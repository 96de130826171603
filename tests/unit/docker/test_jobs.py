"""Jobs, pure parts: the job body is the server body plus job labels; target errors read well."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from traitlets.config import Config

from spawner.commands.run import parse_rest
from spawner.docker.jobs import (
    JobError,
    container_name,
    job_body,
    job_spec,
    resolve_target,
    session_event_extra,
)
from spawner.docker.render import DockerOptions, render_container
from spawner.errors import LockstepError
from spawner.launch.spec import ImageRef, build_launch_spec
from spawner.project import load_project
from spawner.sessions import Session, append_event, start_event
from spawner.settings import Lockstep

ROOT = Path(__file__).resolve().parents[3]
DIGEST = "sha256:" + "cd" * 32
IMAGE = ImageRef(f"127.0.0.1:5000/lockstep/forecast@{DIGEST}", lock_hash="sha256:" + "e" * 64)
FORECAST = load_project(ROOT / "environments" / "forecast")
SOURCES = {"sales": "/srv/data/sales"}
COMMAND = ("python", "-c", "print(1)")


def spec():
    return job_spec(project=FORECAST, image=IMAGE, user="alice", stage="prod",
                    data_sources=SOURCES, command=COMMAND)


def test_job_body_is_the_server_body_with_a_command_and_job_labels():
    body = job_body(spec(), project=FORECAST, session_id="abc123")
    server = render_container(
        build_launch_spec(project=FORECAST, image=IMAGE, user="alice", stage="prod",
                          data_sources=SOURCES, command=COMMAND),
        DockerOptions(volume_nocopy=True))
    assert body["HostConfig"] == server["HostConfig"]
    assert body["User"] == server["User"] == "1000:100"
    assert body["Image"] == IMAGE.reference and body["Cmd"] == list(COMMAND)
    assert body["WorkingDir"] == "/workspace"
    assert body["Labels"]["org.lockstep.kind"] == "job"
    assert body["Labels"]["org.lockstep.session"] == "abc123"
    assert body["Labels"]["org.lockstep.digest"] == DIGEST
    assert container_name("forecast", "abc123") == "lockstep-job_forecast_abc123"


def test_a_job_without_command_says_where_to_put_it():
    with pytest.raises(JobError, match=r"put it after '--'"):
        job_spec(project=FORECAST, image=IMAGE, user="alice", stage="prod",
                 data_sources=SOURCES, command=())


@pytest.mark.parametrize("rest, project, command", [
    (["forecast", "--stage", "prod", "--", "python", "-c", "x"], "forecast",
     ("python", "-c", "x")),
    (["forecast", "--", "sh", "--stage", "qa"], "forecast", ("sh", "--stage", "qa")),
    (["--", "true"], None, ("true",)),
])
def test_project_options_and_command_are_split_at_the_double_dash(rest, project, command):
    args = argparse.Namespace(stage=None, digest=None, session=None, user=None, rest=rest)
    parsed, got = parse_rest(args)
    assert parsed.project == project and got == command


def test_words_before_the_double_dash_are_refused():
    args = argparse.Namespace(stage=None, digest=None, session=None, user=None,
                              rest=["forecast", "python"])
    with pytest.raises(LockstepError, match="the command goes after '--'"):
        parse_rest(args)


def settings(tmp_path) -> Lockstep:
    config = Config()
    config.Lockstep.data_dir = str(tmp_path)
    config.Lockstep.registry = "127.0.0.1:9/lockstep"  # nothing answers: no call may go there
    return Lockstep(config=config)


def test_an_unknown_stage_lists_the_stages(tmp_path):
    with pytest.raises(JobError, match="unknown stage 'prdo'; this site's stages are dev, qa, "
                                       r"prod \(c.Lockstep.stages\)"):
        resolve_target(settings(tmp_path), project="forecast", stage="prdo")


def test_a_malformed_digest_and_a_missing_choice_are_explained(tmp_path):
    with pytest.raises(JobError, match="not a digest; write sha256:<64 hex>"):
        resolve_target(settings(tmp_path), project="forecast", digest="sha256:abc")
    with pytest.raises(JobError, match="say which image to run: --stage"):
        resolve_target(settings(tmp_path), project="forecast")


def test_a_session_gives_its_exact_image_and_project(tmp_path):
    s = settings(tmp_path)
    session = Session(id="s1", user="alice", project="forecast", stage="prod", digest=DIGEST,
                      image=IMAGE.reference, lock_hash=IMAGE.lock_hash)
    append_event(s.data_path("sessions.jsonl"), start_event(session))
    target = resolve_target(s, project=None, session="s1")
    assert (target.project, target.stage, target.image) == ("forecast", "prod", IMAGE)
    assert session_event_extra(COMMAND, target) == {
        "kind": "job", "command": list(COMMAND), "source": "session:s1", "rerun_of": "s1"}
    with pytest.raises(JobError, match="ran project 'forecast', not 'vision'"):
        resolve_target(s, project="vision", session="s1")
    with pytest.raises(LockstepError, match="no session 'zz'"):
        resolve_target(s, project=None, session="zz")
