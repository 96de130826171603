"""The pip path against the real PyPI index (marker ``pypi``): lock, conda-lock's check,
install and import. Skipped, with the reason, when https://pypi.org/simple does not answer.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from spawner.lock import condalock
from spawner.lock.install import install_lock
from spawner.lock.locking import LockInputs, lock_environment
from spawner.lock.pypi import DEFAULT_INDEX, PipInputs
from tests.channel.pypi_index import PINS

pytestmark = pytest.mark.pypi
CONDA_LOCK = Path(sys.executable).parent / "conda-lock"
LINUX = ["__unix=0=0", "__linux=5.10=0", "__glibc=2.36=0", "__archspec=1=x86_64"]
SPEC = """\
name: real
channels:
  - conda-forge
dependencies:
  - python=3.11
  - requests
  - pip:
    - requests-toolbelt==1.0.0
    - msgpack==1.2.4
    - requests
"""


@pytest.fixture(scope="module")
def pypi_answers():
    import httpx

    try:
        httpx.get(f"{DEFAULT_INDEX}/msgpack/", timeout=10).raise_for_status()
    except Exception as exc:  # noqa: BLE001 - no network: skip with the reason
        pytest.skip(f"{DEFAULT_INDEX} does not answer ({type(exc).__name__}: {exc})")


def test_real_index_lock_check_and_install(pypi_answers, tmp_path, jupyter_channel):
    folder = tmp_path / "real"
    folder.mkdir()
    (folder / "environment.yml").write_text(SPEC)
    inputs = LockInputs(channel_urls={"conda-forge": jupyter_channel.as_uri()},
                        virtual_packages={"linux-64": LINUX},
                        pip=PipInputs(cache_dir=tmp_path / "pkgs"))
    lock_environment(folder, inputs, progress=None)
    pip = {p.name: p for p in condalock.read_lockfile(folder / "conda-lock.yml").package
           if p.manager == "pip"}
    assert sorted(pip) == ["msgpack", "requests-toolbelt"]
    pinned = {name: (url, sha) for name, url, sha in PINS}
    for name in pip:
        assert (pip[name].url, pip[name].hash.sha256) == pinned[name]
    mapping = tmp_path / "mapping.json"
    mapping.write_text("{}")
    done = subprocess.run(
        [str(CONDA_LOCK), "lock", "--conda", "/bin/true", "--check-input-hash", "-f",
         "environment.yml", "--lockfile", "conda-lock.yml", "-p", "linux-64",
         "--pypi_to_conda_lookup_file", str(mapping)],
        cwd=folder, capture_output=True, text=True, timeout=300)
    assert "Spec hash already locked for ['linux-64']" in done.stdout + done.stderr
    prefix = tmp_path / "prefix"
    install_lock(folder / "conda-lock.yml", prefix, platform="linux-64",
                 cache_dir=tmp_path / "pkgs")
    ran = subprocess.run([str(prefix / "bin" / "python3.11"), "-c",
                          "import msgpack, requests_toolbelt; print(msgpack.version)"],
                         capture_output=True, text=True, timeout=60, env={})
    assert ran.returncode == 0 and ran.stdout.strip() == "(1, 2, 4)", ran.stderr
