"""project.yaml: strict validation with errors that name file, key, what is allowed, the fix."""

from pathlib import Path

import pytest

from spawner.project import ProjectError, list_projects, load_project, parse_project

REPO = Path(__file__).resolve().parents[2]


def parse(text: str, folder: str | None = "demo"):
    return parse_project(text, source="environments/demo/project.yaml", folder_name=folder)


def test_minimal_project_gets_hardened_defaults():
    project = parse("name: demo\n")
    assert project.isolation == "runc"
    assert project.gpu is None
    assert project.workspace.enabled and project.workspace.target == "/workspace"
    assert project.resources.pids == 1024


def test_example_projects_load_and_cover_gpu_and_data():
    projects = {p.name: p for p in list_projects(REPO / "environments")}
    assert {"forecast", "vision", "sandbox"} <= set(projects)
    assert projects["vision"].gpu is not None and projects["vision"].gpu.count == 1
    assert [m.target for m in projects["forecast"].data] == ["/data/sales"]
    assert projects["sandbox"].isolation == "gvisor"


def test_unknown_key_names_file_key_allowed_and_fix():
    with pytest.raises(ProjectError) as err:
        parse("name: demo\ngpus: 2\n")
    msg = str(err.value)
    assert "environments/demo/project.yaml" in msg
    assert "unknown key 'gpus'" in msg
    assert "allowed keys: name, description, members, data, workspace, gpu" in msg
    assert "Remove or rename it" in msg


def test_nested_unknown_key_is_named_with_its_path():
    with pytest.raises(ProjectError, match=r"unknown key 'data\.0\.mode'"):
        parse("name: demo\ndata:\n- {name: d, source: d, target: /data/d, mode: rw}\n")


def test_name_must_match_folder():
    with pytest.raises(ProjectError, match="set name: demo or rename the folder"):
        parse("name: other\n")


@pytest.mark.parametrize("name", ["Demo", "-demo", "demo_1", "d" * 41])
def test_name_must_be_dns_safe(name):
    with pytest.raises(ProjectError, match="must be DNS-safe"):
        parse(f"name: {name!r}\n", folder=None)


def test_data_target_must_be_absolute_without_dotdot():
    with pytest.raises(ProjectError, match=r"key 'data\.0\.target': must be an absolute path"):
        parse("name: demo\ndata:\n- {name: d, source: d, target: ../etc}\n")


def test_isolation_lists_allowed_runtimes():
    with pytest.raises(ProjectError, match="'runc', 'gvisor' or 'kata'"):
        parse("name: demo\nisolation: docker\n")


def test_duplicate_mount_targets_refused():
    text = "name: demo\ndata:\n- {name: a, source: a, target: /workspace}\n"
    with pytest.raises(ProjectError, match="repeated: /workspace"):
        parse(text)


def test_yaml_syntax_error_is_reported_not_raised_raw():
    with pytest.raises(ProjectError, match="not valid YAML"):
        parse("name: [demo\n")


def test_missing_file_says_how_to_create(tmp_path):
    with pytest.raises(ProjectError, match="create it with at least 'name: empty'"):
        load_project(tmp_path / "empty")


def test_membership_by_user_or_group():
    project = parse("name: demo\nmembers: {users: [alice], groups: [ml]}\n")
    assert project.is_member("alice")
    assert project.is_member("bob", {"ml"})
    assert not project.is_member("bob", {"other"})
