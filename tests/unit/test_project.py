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
    with pytest.raises(ProjectError, match=r"key 'data\.0\.target': must be a plain absolute"):
        parse("name: demo\ndata:\n- {name: d, source: d, target: ../etc}\n")
    for target in ("/data/../etc", "/data/./x", "/data//x", "/data/x/"):
        with pytest.raises(ProjectError, match="must be a plain absolute path"):
            parse(f"name: demo\ndata:\n- {{name: d, source: d, target: '{target}'}}\n")


@pytest.mark.parametrize(
    ("target", "guard"),
    [
        ("/opt/env", "/opt/env"),
        ("/opt/env/bin/jupyterhub-singleuser", "/opt/env"),
        ("/opt/env/lib/python3.11/site-packages/sitecustomize.py", "/opt/env"),
        ("/opt/tools", "/opt"),
        ("/etc/jupyter", "/etc"),
        ("/usr/local", "/usr"),
        ("/home/jovyan", "/home/jovyan"),
        ("/home/jovyan/.ipython", "/home/jovyan"),
        ("/home/other", "/home"),
        ("/proc/self", "/proc"),
    ],
)
def test_data_target_over_env_system_or_home_refused(target, guard):
    """issue 11: code that is not in the promoted image can never be mounted over it."""
    with pytest.raises(ProjectError) as err:
        parse(f"name: demo\ndata:\n- {{name: d, source: demo/d, target: {target}}}\n")
    message = str(err.value)
    assert "environments/demo/project.yaml" in message and "key 'data.0.target'" in message
    assert f"may not cover or sit inside {guard}" in message and "e.g. target: /data/" in message


@pytest.mark.parametrize(
    "target", ["/etc", "/opt/env", "/home/jovyan", "/workspace-x", "/work", "/data/x"]
)
def test_workspace_target_only_at_or_below_workspace(target):
    with pytest.raises(ProjectError) as err:
        parse(f"name: demo\nworkspace: {{target: '{target}'}}\n")
    message = str(err.value)
    assert "key 'workspace.target'" in message and "must be /workspace or a folder below" in message


def test_workspace_below_workspace_accepted():
    assert parse("name: demo\nworkspace: {target: /workspace/demo}\n").workspace.target == (
        "/workspace/demo"
    )


def test_data_targets_may_not_nest_with_each_other_or_the_workspace():
    nested = (
        "- {name: a, source: demo/a, target: /data/a}\n"
        "- {name: b, source: demo/b, target: /data/a/b}\n"
    )
    with pytest.raises(ProjectError, match="lie one inside the other"):
        parse("name: demo\ndata:\n" + nested)
    inside = "name: demo\nworkspace: {target: /workspace}\ndata:\n"
    with pytest.raises(ProjectError, match="may not cover or sit inside|lie one inside"):
        parse(inside + "- {name: a, source: demo/a, target: /workspace/a}\n")


@pytest.mark.parametrize("source", [".", "..", "./", "demo/..", "../other", "demo/./x", "/"])
def test_data_source_dot_and_dotdot_refused(source):
    with pytest.raises(ProjectError, match=r"key 'data\.0\.source'.*without '\.' or '\.\.'"):
        parse(f"name: demo\ndata:\n- {{name: d, source: '{source}', target: /data/d}}\n")


def test_data_mount_needs_exactly_one_of_source_or_dataset():
    with pytest.raises(ProjectError, match="exactly one of 'source'"):
        parse("name: demo\ndata:\n- {name: d, target: /data/d}\n")
    with pytest.raises(ProjectError, match="exactly one of 'source'"):
        parse("name: demo\ndata:\n- {name: d, source: demo/d, dataset: d, target: /data/d}\n")
    project = parse("name: demo\ndata:\n- {name: d, dataset: sales, target: /data/d}\n")
    assert project.data[0].dataset == "sales" and project.data[0].source == ""


def test_isolation_lists_allowed_runtimes():
    with pytest.raises(ProjectError, match="'runc', 'gvisor' or 'kata'"):
        parse("name: demo\nisolation: docker\n")


def test_duplicate_mount_targets_refused():
    text = (
        "name: demo\ndata:\n- {name: a, source: demo/a, target: /data/x}\n"
        "- {name: b, source: demo/b, target: /data/x}\n"
    )
    with pytest.raises(ProjectError, match="repeated: /data/x"):
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
