"""Data mount sources: only under the allowed roots, never via '..' or escaping symlinks."""

from __future__ import annotations

import os
import socket

import pytest

from spawner.launch.datamounts import DataMountError, resolve_data_sources, resolve_mount
from spawner.project import DataMount, parse_project


def mount(source: str) -> DataMount:
    return DataMount(name="iris", source=source, target="/data/iris")


@pytest.fixture
def roots(tmp_path):
    data = tmp_path / "data"
    (data / "iris").mkdir(parents=True)
    (data / "iris" / "iris.csv").write_text("a,b\n")
    other = tmp_path / "other"
    (other / "shared").mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.mkdir()
    return data, other, secret


def test_relative_source_from_first_root(roots):
    data, other, _ = roots
    assert resolve_mount("iris", mount("iris"), [str(data), str(other)]) == str(data / "iris")


def test_absolute_source_under_any_root(roots):
    data, other, _ = roots
    got = resolve_mount("iris", mount(str(other / "shared")), [str(data), str(other)])
    assert got == str(other / "shared")


def test_relative_roots_taken_from_base(roots, tmp_path):
    assert resolve_mount("iris", mount("iris"), ["data"], base=tmp_path) == str(roots[0] / "iris")


def test_outside_roots_refused_with_fix(roots):
    data, _, secret = roots
    with pytest.raises(DataMountError) as err:
        resolve_mount("iris", mount(str(secret)), [str(data)])
    text = str(err.value)
    for part in ("'iris'", str(secret), str(data), "outside the allowed data roots", "Fix:",
                 "c.Lockstep.data_roots"):
        assert part in text


def test_dotdot_refused_even_if_it_lands_inside(roots):
    data, _, _ = roots
    for source in ("../secret", "iris/../iris", f"{data}/iris/../iris"):
        with pytest.raises(DataMountError, match=r"contains '\.\.'"):
            resolve_mount("iris", mount(source), [str(data)])


def test_symlink_escaping_roots_refused(roots):
    data, _, secret = roots
    os.symlink(secret, data / "sneaky")
    with pytest.raises(DataMountError, match="resolves to"):
        resolve_mount("iris", mount("sneaky"), [str(data)])


def test_symlink_inside_roots_resolved_to_target(roots):
    data, _, _ = roots
    os.symlink(data / "iris", data / "alias")
    assert resolve_mount("iris", mount("alias"), [str(data)]) == str(data / "iris")


def test_symlinked_root_is_resolved(roots, tmp_path):
    data, _, _ = roots
    os.symlink(data, tmp_path / "link-root")
    got = resolve_mount("iris", mount("iris"), [str(tmp_path / "link-root")])
    assert got == str(data / "iris")


def test_missing_source_says_create_it(roots):
    with pytest.raises(DataMountError, match="does not exist.*mkdir -p"):
        resolve_mount("iris", mount("nope"), [str(roots[0])])


def test_no_roots_configured():
    with pytest.raises(DataMountError, match="no data roots"):
        resolve_mount("iris", mount("iris"), [])


def test_socket_refused(roots, tmp_path):
    data = roots[0]
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(data / "docker.sock"))
    try:
        with pytest.raises(DataMountError, match="not a directory or regular file"):
            resolve_mount("iris", mount("docker.sock"), [str(data)])
    finally:
        sock.close()


def test_prefix_sibling_is_not_inside(roots, tmp_path):
    data = roots[0]
    (tmp_path / "data-evil").mkdir()
    with pytest.raises(DataMountError, match="outside"):
        resolve_mount("iris", mount(str(tmp_path / "data-evil")), [str(data)])


def test_resolve_all_mounts_of_project(roots):
    project = parse_project(
        "name: iris\ndata:\n  - {name: iris, source: iris, target: /data/iris}\n",
        source="project.yaml")
    assert resolve_data_sources(project, [str(roots[0])]) == {"iris": str(roots[0] / "iris")}
