"""``pip:`` sections locked with uv after the conda solve, and installed from the lock.

Real wheels (``tests/channel/pypi_index.PINS``) served from a local PEP 503 index on
127.0.0.1, the jupyter test channel (which has ``requests`` as a conda package), real
rattler solves in the worker, real uv, and conda-lock's own CLI as the judge of the hash.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from spawner.cli import main
from spawner.lock import condalock
from spawner.lock.install import install_lock
from spawner.lock.locking import LockInputs, lock_environment
from spawner.lock.pypi import PipInputs
from tests.channel.pypi_index import MIXED_SPEC as SPEC

CONDA_LOCK = Path(sys.executable).parent / "conda-lock"
LINUX = ["__unix=0=0", "__linux=5.10=0", "__glibc=2.36=0", "__archspec=1=x86_64"]


def project(root: Path, text: str = SPEC) -> Path:
    folder = root / "environments" / "mixed"
    folder.mkdir(parents=True)
    (folder / "environment.yml").write_text(text)
    return folder


def inputs(channel: Path, index: str, cache: Path) -> LockInputs:
    return LockInputs(
        channel_urls={"conda-forge": channel.as_uri()},
        virtual_packages={"linux-64": LINUX},
        pip=PipInputs(index_url=index, insecure_hosts=("127.0.0.1",), cache_dir=cache),
    )


@pytest.fixture
def locked(tmp_path, jupyter_channel, pypi_index):
    folder = project(tmp_path)
    lock_environment(folder, inputs(jupyter_channel, pypi_index, tmp_path / "pkgs"),
                     progress=None)
    return folder


def pip_entries(lock: Path) -> dict:
    model = condalock.read_lockfile(lock)
    return {p.name: p for p in model.package if p.manager == "pip"}


def test_pip_packages_are_locked_by_url_and_sha256_beside_conda(locked, pypi_index):
    lock = locked / "conda-lock.yml"
    pip = pip_entries(lock)
    assert sorted(pip) == ["msgpack", "requests-toolbelt"]  # requests: conda provides it
    model = condalock.read_lockfile(lock)
    conda = {p.name for p in model.package if p.manager == "conda"}
    assert {"requests", "python", "pip"} <= conda
    assert pip["msgpack"].url.startswith(pypi_index.rsplit("/", 1)[0] + "/files/msgpack-1.2.4")
    assert pip["requests-toolbelt"].dependencies == {"requests": ">=2.0.1,<3.0.0"}
    assert pip["msgpack"].dependencies == {}
    files = {p.url.rsplit("/", 1)[-1]: p.hash.sha256 for p in pip.values()}
    wheels = Path.home() / ".cache" / "lockstep" / "wheels"
    for name, sha in files.items():
        found = list(wheels.glob(f"index-*/{name}"))
        assert found and hashlib.sha256(found[0].read_bytes()).hexdigest() == sha
    assert "manager: pip" in lock.read_text() and "sha256: " in lock.read_text()


def test_conda_lock_agrees_the_mixed_lock_is_current(locked, tmp_path):
    if not CONDA_LOCK.exists():
        pytest.skip(f"conda-lock CLI not found at {CONDA_LOCK}")
    mapping = tmp_path / "mapping.json"
    mapping.write_text("{}")
    args = [str(CONDA_LOCK), "lock", "--conda", "/bin/true", "--check-input-hash", "-f",
            "environment.yml", "--lockfile", "conda-lock.yml", "-p", "linux-64",
            "--pypi_to_conda_lookup_file", str(mapping)]
    done = subprocess.run(args, cwd=locked, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Spec hash already locked for ['linux-64']" in done.stderr + done.stdout
    spec = locked / "environment.yml"
    spec.write_text(spec.read_text().replace("msgpack>=1.0", "msgpack>=1.1"))
    stale = subprocess.run(args, cwd=locked, capture_output=True, text=True, timeout=300)
    assert "Spec hash already locked" not in stale.stderr + stale.stdout


def test_relock_is_byte_identical(locked, jupyter_channel, pypi_index, tmp_path):
    before = (locked / "conda-lock.yml").read_bytes()
    lock_environment(locked, inputs(jupyter_channel, pypi_index, tmp_path / "pkgs"),
                     progress=None)
    assert (locked / "conda-lock.yml").read_bytes() == before


def test_install_unpacks_verified_wheels_without_host_paths(locked, tmp_path):
    prefix = tmp_path / "prefix"
    result = install_lock(locked / "conda-lock.yml", prefix, platform="linux-64",
                          target_prefix="/opt/env", cache_dir=tmp_path / "pkgs")
    assert "pypi:msgpack==1.2.4" in result.packages
    site = prefix / "lib" / "python3.11" / "site-packages"
    info = site / "msgpack-1.2.4.dist-info"
    assert (info / "INSTALLER").read_text() == "lockstep\n"
    assert not (info / "direct_url.json").exists()
    record = (info / "RECORD").read_text()
    assert str(tmp_path) not in record and "msgpack/__init__.py,sha256=" in record
    assert list(site.glob("msgpack/_cmsgpack*.so"))
    # requests is conda's: one copy, its own dist-info, no second one from PyPI
    conda = {p.name: p.version for p in condalock.read_lockfile(locked / "conda-lock.yml").package}
    info = f"requests-{conda['requests']}.dist-info"
    assert [p.name for p in site.glob("requests-*.dist-info")] == [info]
    assert (site / info / "INSTALLER").read_text().strip() != "lockstep"
    done = subprocess.run(
        [str(prefix / "bin" / "python3.11"), "-c",
         "import msgpack, requests_toolbelt, json; "
         "print(json.dumps([msgpack.unpackb(msgpack.packb([1])), requests_toolbelt.__version__]))"],
        capture_output=True, text=True, timeout=60, env={},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[1], "1.0.0"]
    from spawner.image.envlayout import layout_prefix

    layout = layout_prefix(prefix)
    assert layout.packages["pypi:msgpack"].manager == "pip"
    owned = {e.path for e in layout.owned["pypi:msgpack"]}
    assert "opt/env/lib/python3.11/site-packages/msgpack/__init__.py" in owned
    assert "opt/env/lib/python3.11/site-packages/msgpack-1.2.4.dist-info/RECORD" in owned
    assert layout.packages["pypi:requests-toolbelt"].dependencies == ()  # requests is conda's
    again = install_lock(locked / "conda-lock.yml", prefix, platform="linux-64",
                         target_prefix="/opt/env", cache_dir=tmp_path / "pkgs")
    assert again.packages == result.packages  # a second install is a no-op


# -- bad input: exit 2, a message naming the line or package and the fix, lock unchanged --

@pytest.fixture
def cli(tmp_path, monkeypatch, capsys, jupyter_channel, pypi_index):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lockstep_config.py").write_text(
        f"c.Lockstep.channel_urls = {{'conda-forge': {jupyter_channel.as_uri()!r}}}\n"
        "c.Lockstep.server_packages = []\n"
        f"c.Lockstep.virtual_packages = {{'linux-64': {LINUX!r}}}\n"
        f"c.Lockstep.cache_dir = {str(tmp_path / 'cache')!r}\n"
        f"c.Lockstep.pip_index_url = {pypi_index!r}\n"
        "c.Lockstep.insecure_channel_hosts = ['127.0.0.1']\n"
    )
    folder = project(tmp_path)
    assert main(["--config", str(tmp_path / "lockstep_config.py"), "lock", str(folder)]) == 0
    capsys.readouterr()
    before = (folder / "conda-lock.yml").read_bytes()

    def relock(old: str, new: str) -> str:
        spec = folder / "environment.yml"
        spec.write_text(SPEC.replace(old, new))
        code = main(["--config", str(tmp_path / "lockstep_config.py"), "lock", str(folder)])
        err = capsys.readouterr().err
        assert code == 2, err
        assert "Traceback" not in err
        assert (folder / "conda-lock.yml").read_bytes() == before
        return err

    return relock


def test_unparsable_pip_line_names_the_line(cli):
    err = cli("    - msgpack>=1.0\n", "    - msgpack>>=1.0\n")
    assert "environment.yml:9: 'msgpack>>=1.0' is not a pip requirement" in err
    assert "NAME==VERSION" in err


def test_conda_line_conda_cannot_parse_names_the_line(cli):
    err = cli("  - requests\n  - pip:", "  - requests; sys_platform == 'linux'\n  - pip:")
    assert "environment.yml:6: dependency \"requests; sys_platform == 'linux'\"" in err
    assert "move it under pip:" in err


def test_sdist_only_package_is_refused_with_the_fix(cli):
    err = cli("    - requests\n", "    - requests\n    - sdistonly\n")
    assert "sdistonly has only a source distribution, which lockstep does not build" in err
    assert "use the conda package instead" in err


def test_package_without_a_wheel_for_the_platform(cli):
    err = cli("    - requests\n", "    - requests\n    - winonly\n")
    assert "Fix: winonly has no wheel for linux-64: pin a version of it that has one" in err


def test_pip_pin_conflicting_with_conda_names_both(cli):
    err = cli("    - requests\n", "    - requests<2\n")
    assert "pip requirement 'requests<2' conflicts with conda package requests 2." in err
    assert "a pip package never replaces a conda one" in err


def test_index_that_does_not_answer(cli, tmp_path):
    config = tmp_path / "lockstep_config.py"
    config.write_text(config.read_text() + "c.Lockstep.pip_allowed_indexes = "
                      "['http://127.0.0.1:9/simple']\n")
    err = cli("  - pip:\n", "  - pip:\n    - --index-url http://127.0.0.1:9/simple\n")
    assert "cannot lock the pip packages for linux-64" in err
    assert "the package index did not answer" in err


def test_index_the_site_does_not_allow(cli):
    err = cli("  - pip:\n", "  - pip:\n    - --extra-index-url https://evil.example/simple\n")
    assert "package index 'https://evil.example/simple' is not allowed" in err
    assert "c.Lockstep.pip_allowed_indexes" in err
