"""``lockstep inspect`` on locks lockstep writes, and on files that are not locks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spawner.cli import main
from spawner.lock.locking import LockInputs, lock_environment

LINUX = ["__unix=0=0", "__linux=5.10=0", "__glibc=2.36=0", "__archspec=1=x86_64"]
SPEC = "channels: [conda-forge]\ndependencies: [beta, delta]\n"


@pytest.fixture
def project(tmp_path, tiny_channel) -> Path:
    folder = tmp_path / "environments" / "demo"
    folder.mkdir(parents=True)
    (folder / "environment.yml").write_text(SPEC)
    inputs = LockInputs(
        channel_urls={"conda-forge": tiny_channel.as_uri()},
        virtual_packages={"linux-64": LINUX},
        server_packages=("hello",),
    )
    lock_environment(folder, inputs, progress=None)
    return folder


def inspect(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["inspect", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_text_listing(project, capsys, tiny_channel):
    code, out, _ = inspect(capsys, str(project))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == str(project / "conda-lock.yml")
    assert "  platforms: linux-64" in lines
    assert "  status:    current (by conda-lock's content hash)" in lines
    assert "  lockstep.server-packages: hello" in lines
    assert "linux-64: 4 packages (4 conda, 0 pip)" in lines
    delta = next(line for line in lines if line.strip().startswith("delta "))
    assert delta.split()[:5] == ["delta", "1.0", "h_lockstep_0", tiny_channel.as_uri(), "conda"]
    assert len(delta.split()[5]) == 64


def test_json_and_staleness(project, capsys):
    code, out, _ = inspect(capsys, str(project / "conda-lock.yml"), "--json")
    data = json.loads(out)
    assert code == 0 and data["status"] == "current" and data["current"] is True
    assert data["counts"] == {"linux-64": {"conda": 4, "pip": 0}}
    assert [p["name"] for p in data["packages"]["linux-64"]] == ["alpha", "beta", "delta", "hello"]
    assert data["source"] == str(project / "environment.yml")

    (project / "environment.yml").write_text(SPEC.replace("delta", "delta, alpha"))
    data = json.loads(inspect(capsys, str(project), "--json")[1])
    assert data["status"] == "stale"
    assert data["reasons"] == [
        "linux-64: the spec changed since the lock was written (content hash differs)"
    ]
    (project / "environment.yml").write_text("channels: [conda-forge\n")
    data = json.loads(inspect(capsys, str(project), "--json")[1])
    assert data["status"] == "unknown" and data["reasons"][0].startswith("conda-lock cannot read")
    (project / "environment.yml").unlink()
    data = json.loads(inspect(capsys, str(project), "--json")[1])
    assert data["status"] == "unknown" and "no source spec beside the lock" in data["reasons"][0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such lock file"),
        ("version: 1\nmetadata: [\n", "not valid YAML"),
        ("- a list\n", "not a conda-lock file"),
        ("version: 7\nmetadata: {}\npackage: []\n", "version 7 is not one lockstep reads"),
        ("version: 1\nmetadata: {}\npackage: []\n", "not a conda-lock file: metadata.content_hash"),
    ],
)
def test_files_that_are_not_locks_give_errors_not_tracebacks(tmp_path, capsys, content, message):
    path = tmp_path / "conda-lock.yml"
    if content is not None:
        path.write_text(content)
    code, _, err = inspect(capsys, str(path))
    assert code == 2
    assert err.startswith(f"lockstep inspect: error: {path}: ") and message in err
