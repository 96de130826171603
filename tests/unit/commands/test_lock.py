"""``lockstep lock``: real rattler solves (worker subprocess) against the tiny test channel.

The proofs use conda-lock itself: its parser loads what lockstep writes, and its CLI
(``conda-lock lock --check-input-hash``) agrees whether the lock is current.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from spawner.cli import main
from spawner.errors import LockstepError
from spawner.lock import condalock
from spawner.lock.locking import LockInputs, check_lock, lock_environment

REPO = Path(__file__).resolve().parents[3]
CONDA_LOCK = Path(sys.executable).parent / "conda-lock"
LINUX = ["__unix=0=0", "__linux=5.10=0", "__glibc=2.36=0", "__archspec=1=x86_64"]
SPEC = """\
name: demo
channels:
  - conda-forge
  - nodefaults
dependencies:
  - beta
  - delta
"""


def make_project(root: Path, text: str = SPEC, name: str = "demo") -> Path:
    project = root / "environments" / name
    project.mkdir(parents=True)
    (project / "environment.yml").write_text(text)
    return project


def inputs_for(channel: Path, **overrides) -> LockInputs:
    values = dict(
        channel_urls={"conda-forge": channel.as_uri()},
        platforms=("linux-64",),
        virtual_packages={"linux-64": LINUX},
        server_packages=("hello",),
        repodata_cache=None,
    )
    values.update(overrides)
    return LockInputs(**values)


def write_config(root: Path, channel: Path, server_packages=("hello",)) -> Path:
    config = root / "lockstep_config.py"
    config.write_text(
        f"c.Lockstep.channel_urls = {{'conda-forge': {channel.as_uri()!r}}}\n"
        f"c.Lockstep.server_packages = {list(server_packages)!r}\n"
        f"c.Lockstep.cache_dir = {str(root / 'cache')!r}\n"
    )
    return config


def lockstep_process(root: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI as a separate process, as people run it."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LOCKSTEP_CONFIG": str(root / "lockstep_config.py"),
    }
    return subprocess.run(
        [sys.executable, "-m", "spawner.cli", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def lockstep(tmp_path, monkeypatch, capsys):
    """The CLI in this process (rattler still runs in its worker subprocess): fast."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess:
        code = main(["--config", str(tmp_path / "lockstep_config.py"), *args])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return run


def conda_lock_check(project: Path, *platforms: str) -> subprocess.CompletedProcess:
    """The real conda-lock CLI, asked whether the lock is current (it cannot solve: /bin/true)."""
    if not CONDA_LOCK.exists():
        pytest.skip(f"conda-lock CLI not found at {CONDA_LOCK}; pip install conda-lock==4.0.3")
    args = [
        str(CONDA_LOCK),
        "lock",
        "--conda",
        "/bin/true",
        "--check-input-hash",
        "-f",
        "environment.yml",
        "--lockfile",
        "conda-lock.yml",
    ]
    for platform in platforms or ("linux-64",):
        args += ["-p", platform]
    return subprocess.run(args, cwd=project, capture_output=True, text=True, timeout=300)


@pytest.fixture
def locked(tmp_path, tiny_channel):
    project = make_project(tmp_path)
    result = lock_environment(project, inputs_for(tiny_channel), progress=None)
    return project, result


def test_lock_is_conda_lock_format_pinned_by_url_and_hashes(locked, tiny_channel):
    from conda_lock.lockfile import parse_conda_lock_file

    project, result = locked
    assert result.packages == {"linux-64": 4} and result.added == ("hello",)
    lockfile = parse_conda_lock_file(project / "conda-lock.yml")
    by_name = {p.name: p for p in lockfile.package}
    assert sorted(by_name) == ["alpha", "beta", "delta", "hello"]
    assert by_name["alpha"].version == "1.0"  # beta needs alpha <2
    assert by_name["beta"].dependencies == {"alpha": "<2"}
    for package in lockfile.package:
        archive = Path(unquote(urlparse(package.url).path))
        assert archive.parent.parent == tiny_channel
        data = archive.read_bytes()
        assert package.hash.sha256 == hashlib.sha256(data).hexdigest()
        assert package.hash.md5 == hashlib.md5(data).hexdigest()
        assert package.categories == {"main"} and package.manager == "conda"
    meta = lockfile.metadata
    assert [c.url for c in meta.channels] == ["conda-forge"]
    assert meta.platforms == ["linux-64"] and meta.sources == ["environment.yml"]
    assert meta.custom_metadata == {
        "lockstep.channel.conda-forge": tiny_channel.as_uri(),
        "lockstep.server-packages": "hello",
        "lockstep.virtual-packages.linux-64": " ".join(LINUX),
    }
    text = (project / "conda-lock.yml").read_text()
    assert "category: main" in text and "optional: false" in text
    assert "conda-lock -f environment.yml --lockfile conda-lock.yml" in text


def test_conda_lock_cli_agrees_current_then_stale(locked):
    project, _ = locked
    before = (project / "conda-lock.yml").read_bytes()
    agreed = conda_lock_check(project)
    assert agreed.returncode == 0, agreed.stderr
    assert "Spec hash already locked for ['linux-64']. Skipping solve." in agreed.stderr
    assert (project / "conda-lock.yml").read_bytes() == before

    (project / "environment.yml").write_text(SPEC + "  - alpha <2\n")
    stale = conda_lock_check(project)
    assert "Locking dependencies for ['linux-64']" in stale.stderr


def test_check_exit_codes_and_stale_message(tmp_path, tiny_channel, lockstep):
    write_config(tmp_path, tiny_channel)
    make_project(tmp_path)
    assert lockstep("lock", "environments/demo").returncode == 0
    current = lockstep("lock", "--check", "environments/demo")
    assert current.returncode == 0, current.stderr
    assert current.stdout.startswith("current: ")

    spec = tmp_path / "environments/demo/environment.yml"
    spec.write_text(spec.read_text() + "  - alpha\n")
    stale = lockstep("lock", "--check", "environments/demo")
    assert stale.returncode == 1
    assert stale.stdout.startswith("stale: linux-64: the spec changed")
    assert stale.stdout.rstrip().endswith("run `lockstep lock environments/demo`")


def test_lockstep_inputs_count_for_staleness(locked, tiny_channel):
    project, _ = locked
    assert check_lock(project, inputs_for(tiny_channel)).current is True
    verdict = check_lock(project, inputs_for(tiny_channel, server_packages=("hello", "alpha")))
    assert verdict.current is False
    assert verdict.reasons == ("lockstep.server-packages changed ('hello' -> 'hello, alpha')",)
    moved = check_lock(
        project, inputs_for(tiny_channel, channel_urls={"conda-forge": "file:///moved"})
    )
    assert "lockstep.channel.conda-forge changed" in moved.reasons[0]
    glibc = check_lock(project, inputs_for(tiny_channel, virtual_packages={"linux-64": LINUX[:2]}))
    assert "lockstep.virtual-packages.linux-64 changed" in glibc.reasons[0]


def test_cli_progress_and_output(tmp_path, tiny_channel, lockstep):
    write_config(tmp_path, tiny_channel)
    make_project(tmp_path)
    done = lockstep("lock", "demo")  # a bare project name works too
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "adding server packages: hello",
        "solving for linux-64...",
        "linux-64: 4 packages",
        f"wrote {Path('environments/demo/conda-lock.yml')}",
    ]


def test_unsolvable_spec_names_the_conflict_and_keeps_the_old_lock(tmp_path, tiny_channel):
    write_config(tmp_path, tiny_channel)
    project = make_project(tmp_path)
    lock_environment(project, inputs_for(tiny_channel), progress=None)
    before = (project / "conda-lock.yml").read_bytes()
    (project / "environment.yml").write_text(SPEC + "  - gamma\n")
    failed = lockstep_process(tmp_path, "lock", "environments/demo")
    assert failed.returncode == 2
    assert "Traceback" not in failed.stderr
    assert "cannot solve for linux-64" in failed.stderr
    for name in ("beta", "gamma", "alpha <2", "alpha >=2"):
        assert name in failed.stderr
    assert "conda-lock.yml was left unchanged" in failed.stderr
    assert (project / "conda-lock.yml").read_bytes() == before
    assert sorted(p.name for p in project.iterdir()) == ["conda-lock.yml", "environment.yml"]


def test_editable_pip_line_is_a_clear_error(tmp_path, tiny_channel, lockstep):
    write_config(tmp_path, tiny_channel)
    make_project(tmp_path, SPEC + "  - pip:\n    - -e ./mypkg\n")
    failed = lockstep("lock", "environments/demo")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "environment.yml:9: '-e ./mypkg' is an editable install" in failed.stderr
    assert "Build a wheel (`pip wheel --no-deps .`)" in failed.stderr
    assert not (tmp_path / "environments/demo/conda-lock.yml").exists()


def test_unknown_channel_names_the_fix_and_the_flag_supplies_it(tmp_path, tiny_channel, lockstep):
    write_config(tmp_path, tiny_channel)
    make_project(tmp_path, SPEC.replace("conda-forge", "internal"))
    failed = lockstep("lock", "environments/demo")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert (
        "c.Lockstep.channel_urls" in failed.stderr and "--channel-url internal=URL" in failed.stderr
    )
    done = lockstep(
        "lock", "environments/demo", "--channel-url", f"internal={tiny_channel.as_uri()}"
    )
    assert done.returncode == 0, done.stderr


def test_channel_given_as_url_is_used_as_is(tmp_path, tiny_channel):
    project = make_project(tmp_path, SPEC.replace("conda-forge", tiny_channel.as_uri()))
    inputs = inputs_for(tiny_channel, channel_urls={}, allowed_channels=(tiny_channel.as_uri(),))
    lock_environment(project, inputs, progress=None)
    lockfile = condalock.read_lockfile(project / "conda-lock.yml")
    assert [c.url for c in lockfile.metadata.channels] == [tiny_channel.as_uri()]
    assert "lockstep.channel.conda-forge" not in lockfile.metadata.custom_metadata
    assert conda_lock_check(project).returncode == 0


def test_spec_naming_an_unlisted_channel_url_is_refused_before_any_fetch(tmp_path, tiny_channel):
    """issue 11: a channel URL the site did not allow never reaches the solver."""
    project = make_project(tmp_path, SPEC.replace("conda-forge", tiny_channel.as_uri()))
    cache = tmp_path / "repodata"
    inputs = inputs_for(tiny_channel, channel_urls={}, repodata_cache=cache)
    with pytest.raises(LockstepError) as raised:
        lock_environment(project, inputs, progress=None)
    message = str(raised.value)
    assert tiny_channel.as_uri() in message and "c.Lockstep.allowed_channels" in message
    assert raised.value.exit_code == 2
    assert not (project / "conda-lock.yml").exists() and not cache.exists()


def test_http_channel_needs_an_insecure_host(tmp_path, tiny_channel):
    url = "http://127.0.0.1:9/conda-forge"
    project = make_project(tmp_path, SPEC)
    with pytest.raises(LockstepError, match="insecure_channel_hosts"):
        lock_environment(
            project, inputs_for(tiny_channel, channel_urls={"conda-forge": url}), progress=None
        )


def test_spec_naming_a_server_package_keeps_its_own_pin(tmp_path, tiny_channel):
    project = make_project(tmp_path, SPEC + "  - hello 1.0\n")
    result = lock_environment(project, inputs_for(tiny_channel), progress=None)
    assert result.added == ()
    meta = condalock.read_lockfile(project / "conda-lock.yml").metadata
    assert meta.custom_metadata["lockstep.server-packages"] == ""


def test_relock_is_byte_identical(locked, tiny_channel):
    project, _ = locked
    first = (project / "conda-lock.yml").read_bytes()
    lock_environment(project, inputs_for(tiny_channel), progress=None)
    assert (project / "conda-lock.yml").read_bytes() == first


def test_platforms_key_locks_each_platform_and_conda_lock_agrees(tmp_path, tiny_channel):
    text = SPEC.replace("  - delta\n", "") + "platforms:\n  - linux-64\n  - osx-arm64\n"
    project = make_project(tmp_path, text)
    osx = ["__unix=0=0", "__osx=13.0=0", "__archspec=1=arm64"]
    inputs = inputs_for(tiny_channel, virtual_packages={"linux-64": LINUX, "osx-arm64": osx})
    result = lock_environment(project, inputs, progress=None)
    assert result.packages == {"linux-64": 3, "osx-arm64": 3}
    assert conda_lock_check(project, "linux-64", "osx-arm64").returncode == 0
    with pytest.raises(LockstepError, match="drop --platform"):
        lock_environment(
            project, LockInputs(**{**inputs.__dict__, "requested_platforms": ("win-64",)})
        )
    with pytest.raises(LockstepError, match=r"c.Lockstep.virtual_packages\['osx-arm64'\]"):
        lock_environment(project, inputs_for(tiny_channel), progress=None)


def test_channel_pins_resolve_to_the_channel_url(tmp_path, tiny_channel):
    project = make_project(tmp_path, SPEC + "  - conda-forge::hello\n")
    lock_environment(project, inputs_for(tiny_channel), progress=None)
    urls = {p.name: p.url for p in condalock.read_lockfile(project / "conda-lock.yml").package}
    assert urls["hello"].startswith(tiny_channel.as_uri())
    (project / "environment.yml").write_text(SPEC + "  - bioconda::hello\n")
    with pytest.raises(LockstepError, match="hello is pinned to channel 'bioconda'"):
        lock_environment(project, inputs_for(tiny_channel), progress=None)
