"""``lockstep lock`` for several platforms in one run, and CUDA builds (real rattler solves
in the worker subprocess against the offline test channel: ``zeta`` is built for every
platform, ``cudatoy`` needs ``__cuda >=12.0``; see ``tests/channel/platforms.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spawner.cli import main
from spawner.lock import condalock

CONDA_LOCK = Path(sys.executable).parent / "conda-lock"
SPEC = """\
name: laptops
channels:
  - conda-forge
dependencies:
  - zeta
  - hello
  - cudatoy  # [linux]
platforms:
  - linux-64
  - osx-arm64
  - win-64
"""


@pytest.fixture
def lockstep(tmp_path, monkeypatch, capsys, tiny_channel):
    """The CLI in this process (rattler runs in its worker subprocess), on the tiny channel."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lockstep_config.py").write_text(
        f"c.Lockstep.channel_urls = {{'conda-forge': {tiny_channel.as_uri()!r}}}\n"
        "c.Lockstep.server_packages = []\n"
        f"c.Lockstep.cache_dir = {str(tmp_path / 'cache')!r}\n"
    )

    def run(*args: str) -> subprocess.CompletedProcess:
        code = main(["--config", str(tmp_path / "lockstep_config.py"), *args])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return run


def project(root: Path, spec: str = SPEC, project_yaml: str = 'gpu: {cuda: ">=12.0"}\n') -> Path:
    folder = root / "environments" / "laptops"
    folder.mkdir(parents=True)
    (folder / "environment.yml").write_text(spec)
    (folder / "project.yaml").write_text("name: laptops\n" + project_yaml)
    return folder


def test_one_run_locks_linux_mac_and_windows_and_conda_lock_agrees(tmp_path, lockstep):
    folder = project(tmp_path)
    done = lockstep("lock", "laptops")
    assert done.returncode == 0, done.stderr
    assert [line for line in done.stdout.splitlines() if ": " in line and "packages" in line] == [
        "linux-64: 3 packages", "osx-arm64: 2 packages", "win-64: 2 packages"]
    lock = condalock.read_lockfile(folder / "conda-lock.yml")
    subdirs = {(p.platform, p.name): p.url.rsplit("/", 2)[-2] for p in lock.package}
    assert subdirs == {
        ("linux-64", "zeta"): "linux-64", ("osx-arm64", "zeta"): "osx-arm64",
        ("win-64", "zeta"): "win-64", ("linux-64", "cudatoy"): "noarch",
        ("linux-64", "hello"): "noarch", ("osx-arm64", "hello"): "noarch",
        ("win-64", "hello"): "noarch"}
    meta = lock.metadata.custom_metadata
    assert meta["lockstep.cuda"] == ">=12.0"
    assert meta["lockstep.virtual-packages.linux-64"].endswith("__cuda=12.0=0")
    assert "__cuda" not in meta["lockstep.virtual-packages.osx-arm64"]
    assert lockstep("lock", "--check", "laptops").returncode == 0
    if CONDA_LOCK.exists():
        args = [str(CONDA_LOCK), "lock", "--conda", "/bin/true", "--check-input-hash",
                "-f", "environment.yml", "--lockfile", "conda-lock.yml",
                "-p", "linux-64", "-p", "osx-arm64", "-p", "win-64"]
        checked = subprocess.run(args, cwd=folder, capture_output=True, text=True, timeout=300)
        assert checked.returncode == 0, checked.stderr
    report = lockstep("inspect", "--json", str(folder / "conda-lock.yml"))
    assert report.returncode == 0, report.stderr
    counts = json.loads(report.stdout)["counts"]
    assert counts == {"linux-64": {"conda": 3, "pip": 0}, "osx-arm64": {"conda": 2, "pip": 0},
                      "win-64": {"conda": 2, "pip": 0}}


def test_an_unknown_platform_names_the_line_and_the_allowed_set(tmp_path, lockstep):
    folder = project(tmp_path)
    assert lockstep("lock", "laptops").returncode == 0
    before = (folder / "conda-lock.yml").read_bytes()
    (folder / "environment.yml").write_text(SPEC.replace("  - win-64\n", "  - windows-64\n"))
    failed = lockstep("lock", "laptops")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "environment.yml (line 11): platforms names unknown platform(s) windows-64" in \
        failed.stderr
    assert "allowed: linux-64, linux-aarch64, osx-64, osx-arm64, win-64" in failed.stderr
    assert (folder / "conda-lock.yml").read_bytes() == before


def test_the_site_default_platforms_are_checked_too(tmp_path, lockstep):
    project(tmp_path, SPEC.split("platforms:")[0])
    with open(tmp_path / "lockstep_config.py", "a") as config:
        config.write("c.Lockstep.platforms = ['linux-64', 'linux-ppc64le']\n")
    failed = lockstep("lock", "laptops")
    assert failed.returncode == 2
    assert "c.Lockstep.platforms names unknown platform(s) linux-ppc64le" in failed.stderr


def test_a_cuda_requirement_no_package_satisfies_keeps_the_old_lock(tmp_path, lockstep):
    folder = project(tmp_path)
    assert lockstep("lock", "laptops").returncode == 0
    before = (folder / "conda-lock.yml").read_bytes()
    (folder / "project.yaml").write_text('name: laptops\ngpu: {cuda: ">=11.8"}\n')
    stale = lockstep("lock", "--check", "laptops")
    assert stale.returncode == 1 and "lockstep.cuda changed ('>=12.0' -> '>=11.8')" in stale.stdout
    failed = lockstep("lock", "laptops")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "cannot solve for linux-64" in failed.stderr
    assert "cudatoy" in failed.stderr and "__cuda >=12.0" in failed.stderr
    assert "newer CUDA than the project states (>=11.8" in failed.stderr
    assert "conda-lock.yml was left unchanged" in failed.stderr
    assert (folder / "conda-lock.yml").read_bytes() == before


def test_a_cuda_package_without_a_stated_cuda_says_where_to_state_it(tmp_path, lockstep):
    folder = project(tmp_path, project_yaml="")
    failed = lockstep("lock", "laptops")
    assert failed.returncode == 2
    assert 'add the CUDA its GPU code needs to project.yaml' in failed.stderr
    assert not (folder / "conda-lock.yml").exists()


def test_a_bad_cuda_range_is_refused_before_solving(tmp_path, lockstep):
    project(tmp_path, project_yaml='gpu: {cuda: "12.x"}\n')
    failed = lockstep("lock", "laptops")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "project.yaml: gpu.cuda '12.x' is not a CUDA requirement" in failed.stderr
    assert "solving" not in failed.stdout
