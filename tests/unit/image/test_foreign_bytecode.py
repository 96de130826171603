"""Bytecode for a platform this host cannot run comes from the host platform's python.

``index.compile_plan`` says "host" when the foreign env's python has the host env's
``major.minor``; ``bytecode.compile_bytecode(..., interpreter=host_env)`` then compiles the
foreign env's sources with the host env's python in the build sandbox. Here the "foreign"
env is a second install of the same lock with its interpreter deleted, so it can only be
compiled by the other one, and its .pyc files must be the bytes the env's own python writes.
Real rattler install (tiny channel's python), real bwrap sandbox.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spawner.image.bytecode import compile_bytecode
from spawner.image.index import compile_plan
from spawner.image.staging import python_version
from spawner.lock.install import install_lock
from spawner.lock.locking import LockInputs, lock_environment
from spawner.settings import ENV_PREFIX

LINUX = ["__unix=0=0", "__linux=5.10=0", "__glibc=2.36=0", "__archspec=1=x86_64"]


@pytest.fixture(scope="module")
def lockfile(tmp_path_factory, tiny_channel) -> Path:
    project = tmp_path_factory.mktemp("environments") / "pyonly"
    project.mkdir()
    (project / "environment.yml").write_text(
        "channels: [conda-forge]\ndependencies: [python=3.11]\n")
    inputs = LockInputs(channel_urls={"conda-forge": tiny_channel.as_uri()},
                        virtual_packages={"linux-64": LINUX}, server_packages=())
    return lock_environment(project, inputs, progress=None).lock_path


def _pycs(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*.pyc")) if "/json/" in p.as_posix()}


def test_foreign_env_is_compiled_by_the_host_envs_python(tmp_path, lockfile):
    cache = tmp_path / "pkgs"
    host, foreign = tmp_path / "host", tmp_path / "foreign"
    for prefix in (host, foreign):
        install_lock(lockfile, prefix, platform="linux-64", target_prefix=ENV_PREFIX,
                     mirrors={}, cache_dir=cache)
    for python in (foreign / "bin").glob("python*"):
        python.unlink()  # what this host could not run
    version = python_version(foreign)
    assert compile_plan("linux-aarch64", host_platform="linux-64", env_python=version,
                        host_python=python_version(host)) == "host"
    assert compile_bytecode(foreign, cache_dir=tmp_path / "pyc-a") == (0, 0)  # cannot alone
    total, hits = compile_bytecode(foreign, cache_dir=tmp_path / "pyc-a", interpreter=host)
    assert total > 100 and hits == 0
    compile_bytecode(host, cache_dir=tmp_path / "pyc-b")  # the env's own python, own cache
    made, own = _pycs(foreign), _pycs(host)
    assert made and made == own
