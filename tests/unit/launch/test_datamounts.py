"""Data mount sources: confined to the project's own folder in a data root or a site-named data
set, never via '..' or escaping symlinks; targets only below the allowed prefixes."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from traitlets import TraitError

from spawner.launch.datamounts import (
    DataMountError,
    DataPolicy,
    resolve_data_sources,
    resolve_mount,
    site_data_sources,
)
from spawner.project import DataMount, load_project, parse_project
from spawner.settings import Lockstep


def mount(source: str, target: str = "/data/iris") -> DataMount:
    return DataMount(name="iris", source=source, target=target)


def raw_mount(source: str) -> DataMount:
    """A mount that skipped project.yaml's own checks (defence in depth)."""
    return DataMount.model_construct(name="iris", source=source, dataset="", target="/data/iris")


@pytest.fixture
def roots(tmp_path):
    data = tmp_path / "data"
    (data / "iris").mkdir(parents=True)
    (data / "iris" / "iris.csv").write_text("a,b\n")
    (data / "weather" / "private").mkdir(parents=True)
    (data / "shared").mkdir()
    other = tmp_path / "other"
    (other / "iris" / "shared").mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.mkdir()
    return data, other, secret


def test_relative_source_from_first_root_in_the_project_folder(roots):
    data, other, _ = roots
    assert resolve_mount("iris", mount("iris"), [str(data), str(other)]) == str(data / "iris")
    got = resolve_mount("iris", mount("iris/iris.csv"), [str(data)])
    assert got == str(data / "iris" / "iris.csv")


def test_absolute_source_in_the_project_folder_of_any_root(roots):
    data, other, _ = roots
    got = resolve_mount("iris", mount(str(other / "iris" / "shared")), [str(data), str(other)])
    assert got == str(other / "iris" / "shared")


def test_relative_roots_taken_from_base(roots, tmp_path):
    assert resolve_mount("iris", mount("iris"), ["data"], base=tmp_path) == str(roots[0] / "iris")


def test_another_projects_data_refused(roots):
    """issue 11: project iris may not mount project weather's folder, nor the whole root."""
    data, _, _ = roots
    for source in ("weather/private", str(data / "weather"), "shared", str(data)):
        with pytest.raises(DataMountError) as err:
            resolve_mount("iris", mount(source), [str(data)])
        text = str(err.value)
        for part in ("'iris'", repr(source), "not in the project's own data folder",
                     str(data / "iris"), "Fix:", "c.Lockstep.datasets"):
            assert part in text


def test_outside_roots_refused_with_fix(roots):
    data, _, secret = roots
    with pytest.raises(DataMountError) as err:
        resolve_mount("iris", mount(str(secret)), [str(data)])
    text = str(err.value)
    for part in ("'iris'", str(secret), str(data), "not in the project's own data folder", "Fix:"):
        assert part in text


def test_dot_and_dotdot_refused_even_if_they_land_inside(roots):
    data, _, _ = roots
    for source in ("../secret", "iris/../iris", f"{data}/iris/../iris", ".", ".."):
        with pytest.raises(ValueError, match="without '.' or '..'"):
            mount(source)
    for source in ("../secret", "iris/../iris", f"{data}/iris/../iris"):
        with pytest.raises(DataMountError, match=r"contains '\.\.'"):
            resolve_mount("iris", raw_mount(source), [str(data)])


def test_symlink_escaping_roots_refused(roots):
    data, _, secret = roots
    os.symlink(secret, data / "iris" / "sneaky")
    with pytest.raises(DataMountError, match="resolves to"):
        resolve_mount("iris", mount("iris/sneaky"), [str(data)])


def test_curators_link_in_the_project_folder_is_a_grant(roots):
    data, _, _ = roots
    os.symlink(data / "shared", data / "iris" / "alias")
    assert resolve_mount("iris", mount("iris/alias"), [str(data)]) == str(data / "shared")


def test_symlinked_root_is_resolved(roots, tmp_path):
    data, _, _ = roots
    os.symlink(data, tmp_path / "link-root")
    got = resolve_mount("iris", mount("iris"), [str(tmp_path / "link-root")])
    assert got == str(data / "iris")
    got = resolve_mount("iris", mount(str(tmp_path / "link-root" / "iris")),
                        [str(tmp_path / "link-root")])
    assert got == str(data / "iris")


def test_missing_source_says_create_it(roots):
    with pytest.raises(DataMountError, match="does not exist.*mkdir -p"):
        resolve_mount("iris", mount("iris/nope"), [str(roots[0])])


def test_no_roots_configured():
    with pytest.raises(DataMountError, match="no data roots"):
        resolve_mount("iris", mount("iris"), [])


def test_socket_refused(roots, tmp_path):
    data = roots[0]
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(data / "iris" / "docker.sock"))
    try:
        with pytest.raises(DataMountError, match="not a directory or regular file"):
            resolve_mount("iris", mount("iris/docker.sock"), [str(data)])
    finally:
        sock.close()


def test_prefix_sibling_of_the_project_folder_is_not_inside(roots):
    data = roots[0]
    (data / "iris-evil").mkdir()
    with pytest.raises(DataMountError, match="not in the project's own data folder"):
        resolve_mount("iris", mount(str(data / "iris-evil")), [str(data)])


def test_target_must_be_below_an_allowed_prefix(roots):
    data = roots[0]
    with pytest.raises(DataMountError) as err:
        resolve_mount("iris", mount("iris", target="/mnt/iris"), [str(data)])
    text = str(err.value)
    assert "key 'target' '/mnt/iris'" in text and "/data" in text
    assert "c.Lockstep.data_target_prefixes" in text
    policy = DataPolicy(roots=(str(data),), target_prefixes=("/data", "/mnt"))
    got = resolve_mount("iris", mount("iris", target="/mnt/iris"), [], policy=policy)
    assert got == str(data / "iris")


def dataset_mount(name: str = "sales") -> DataMount:
    return DataMount(name="sales", dataset=name, target="/data/sales")


def test_named_dataset_granted_to_a_project_or_a_group(roots, tmp_path):
    data = roots[0]
    offered = {"sales": {"source": "shared", "projects": ["iris"], "groups": ["analysts"]}}
    policy = DataPolicy(roots=(str(data),), datasets=offered)
    assert resolve_mount("iris", dataset_mount(), [], policy=policy) == str(data / "shared")
    got = resolve_mount("weather", dataset_mount(), [], policy=policy, user_groups={"analysts"})
    assert got == str(data / "shared")
    with pytest.raises(DataMountError) as err:
        resolve_mount("weather", dataset_mount(), [], policy=policy, user_groups={"ml"})
    assert "not granted to this project" in str(err.value)
    assert "c.Lockstep.datasets['sales']['projects']" in str(err.value)
    with pytest.raises(DataMountError, match="not offered by the site .offered: sales."):
        resolve_mount("iris", dataset_mount("weather"), [], policy=policy)


def test_dataset_outside_the_roots_refused(roots):
    data, _, secret = roots
    offered = {"leak": {"source": str(secret), "projects": ["iris"]}}
    policy = DataPolicy(roots=(str(data),), datasets=offered)
    with pytest.raises(DataMountError, match="outside the allowed data roots"):
        resolve_mount("iris", dataset_mount("leak"), [], policy=policy)


def test_site_settings_policy(roots):
    data = roots[0]
    settings = Lockstep(
        data_roots=[str(data)], data_target_prefixes=["/data"],
        datasets={"sales": {"source": "shared", "projects": ["iris"]}},
    )
    project = parse_project(
        "name: iris\ndata:\n  - {name: iris, source: iris, target: /data/iris}\n"
        "  - {name: sales, dataset: sales, target: /data/sales}\n",
        source="project.yaml")
    assert site_data_sources(project, settings) == {
        "iris": str(data / "iris"), "sales": str(data / "shared")
    }


def test_site_datasets_validated():
    with pytest.raises(TraitError, match="must be a mapping with 'source'"):
        Lockstep(datasets={"sales": "/srv/data/sales"})
    with pytest.raises(TraitError, match=r"\['projects'\] must be a list"):
        Lockstep(datasets={"sales": {"source": "/srv/sales", "projects": "forecast"}})
    offered = {"sales": {"source": "/srv/sales", "projects": ["forecast"]}}
    assert Lockstep(datasets=offered).datasets == offered


def test_resolve_all_mounts_of_project(roots):
    project = parse_project(
        "name: iris\ndata:\n  - {name: iris, source: iris, target: /data/iris}\n",
        source="project.yaml")
    assert resolve_data_sources(project, [str(roots[0])]) == {"iris": str(roots[0] / "iris")}


def test_repo_example_forecast_mounts_the_shared_sales_data():
    """environments/forecast mounts data/sales through the link in data/forecast/."""
    repo = Path(__file__).resolve().parents[3]
    project = load_project(repo / "environments" / "forecast")
    sources = resolve_data_sources(project, [str(repo / "data")])
    assert sources == {"sales": str((repo / "data" / "sales").resolve())}
