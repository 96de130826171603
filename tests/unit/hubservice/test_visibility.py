"""Who sees which project: members and admins; everyone else gets the same 404 as for a
project that does not exist."""

from __future__ import annotations

import pytest

from spawner.hubservice.visibility import NotVisible, visible_project, visible_projects
from spawner.launch.access import Requester
from tests.unit.hubservice.servicedata import project

PROJECTS = {p.name: p for p in (
    project("forecast", users=["alice"], groups=["analysts"]),
    project("secret", users=["carol"]),
)}


def names(who: Requester) -> list[str]:
    return [p.name for p in visible_projects(PROJECTS, who)]


def test_members_by_name_or_group_and_admins_see_a_project():
    assert names(Requester("alice")) == ["forecast"]
    assert names(Requester("bob", groups=frozenset({"analysts"}))) == ["forecast"]
    assert names(Requester("root", admin=True)) == ["forecast", "secret"]
    assert names(Requester("nobody")) == []
    assert visible_project(PROJECTS, "secret", Requester("carol")).name == "secret"


def test_a_non_member_gets_404_worded_as_for_a_missing_project():
    with pytest.raises(NotVisible) as hidden:
        visible_project(PROJECTS, "secret", Requester("alice"))
    with pytest.raises(NotVisible) as missing:
        visible_project(PROJECTS, "nothing", Requester("alice"))
    assert hidden.value.status == missing.value.status == 404
    assert str(hidden.value).replace("secret", "X") == str(missing.value).replace("nothing", "X")
    assert "carol" not in str(hidden.value)
