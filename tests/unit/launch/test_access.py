"""spawner.launch.access: who may launch which project at which stage (shared by both spawners)."""

from __future__ import annotations

import pytest

from spawner.launch.access import (
    LaunchRefused,
    Requester,
    check_project,
    check_replay,
    choose_stage,
    parse_choice,
    parse_options,
    render_form,
    usable_projects,
)
from spawner.project import parse_project

PROJECTS = {
    p.name: p for p in (
        parse_project("name: iris\nmembers: {users: [alice], groups: [ml]}\n", source="t"),
        parse_project("name: secret\n", source="t"),
    )
}
STAGES = ["dev", "qa", "prod"]


@pytest.mark.parametrize("who,ok", [
    (Requester("alice"), True),
    (Requester("bob", frozenset({"ml"})), True),
    (Requester("root", admin=True), True),
    (Requester("mallory"), False),
])
def test_membership(who, ok):
    assert (PROJECTS["iris"] in usable_projects(PROJECTS.values(), who)) is ok


def test_refusals_are_one_404_that_names_no_members_and_tells_no_existence():
    with pytest.raises(LaunchRefused) as hidden:
        check_project(PROJECTS, "iris", Requester("mallory"))
    with pytest.raises(LaunchRefused) as missing:
        check_project(PROJECTS, "nope", Requester("mallory"))
    assert hidden.value.status == missing.value.status == 404
    assert str(hidden.value) == str(missing.value).replace("'nope'", "'iris'")
    assert "alice" not in str(hidden.value) and "ml" not in str(hidden.value).split(".")[1]
    assert "members:" in str(hidden.value)  # the fix, without naming anyone
    with pytest.raises(LaunchRefused) as info:
        check_project(PROJECTS, "nope", Requester("alice"))
    assert info.value.status == 404 and "iris" in str(info.value)
    assert "secret" not in str(info.value)  # never lists projects the user may not use


def test_stage_choice():
    assert choose_stage("iris", None, stages=STAGES, available=["dev", "qa"]) == "qa"
    assert choose_stage("iris", "dev", stages=STAGES, available=["dev", "qa"]) == "dev"
    for stage, available, status in (("prod", ["dev"], 409), ("x", ["dev"], 400),
                                     (None, [], 409)):
        with pytest.raises(LaunchRefused) as info:
            choose_stage("iris", stage, stages=STAGES, available=available)
        assert info.value.status == status


def test_replay_only_own_sessions():
    assert check_replay(PROJECTS, session_id="s", session_user="alice", session_project="iris",
                        who=Requester("alice")).name == "iris"
    with pytest.raises(LaunchRefused) as info:
        check_replay(PROJECTS, session_id="s", session_user="alice", session_project="iris",
                     who=Requester("bob", frozenset({"ml"})))
    assert info.value.status == 403


def test_options_and_form():
    assert parse_options({"target": ["iris/qa"]}) == {"project": "iris", "stage": "qa"}
    assert parse_options({"project": ["iris"]}) == {"project": "iris"}
    assert parse_choice({"project": "iris"}) == ("iris", None)
    with pytest.raises(LaunchRefused):
        parse_choice({})
    form = render_form(PROJECTS.values(), Requester("alice"), {"iris": ["dev", "prod"]}, STAGES)
    assert form.index('value="iris/prod" selected') < form.index('value="iris/dev"')
    assert "secret" not in form
    assert "not a member" in render_form(PROJECTS.values(), Requester("nobody"), {}, STAGES)
