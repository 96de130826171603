"""``install_lock`` / ``lockstep install``: real rattler installs from the tiny channel.

Each test locks against a private copy of the channel so it can tamper with archives.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from spawner.cli import main
from spawner.errors import LockstepError
from spawner.lock import condalock
from spawner.lock.fetch import ChecksumError, FetchError
from spawner.lock.install import install_lock
from spawner.lock.locking import LockInputs, lock_environment

LINUX = ["__unix=0=0", "__linux=5.10=0", "__glibc=2.36=0", "__archspec=1=x86_64"]
SPEC = "channels: [conda-forge]\ndependencies: [beta, delta]\n"
BIG = ("python-", "pip-", "libstdcxx")


@pytest.fixture
def channel(tmp_path, tiny_channel) -> Path:
    """The tiny channel's small archives and repodata, copied so a test may damage them."""
    copy = tmp_path / "channel"
    for subdir in ("noarch", "linux-64"):
        (copy / subdir).mkdir(parents=True)
        for item in (tiny_channel / subdir).iterdir():
            if item.is_file() and not item.name.startswith(BIG):
                shutil.copy2(item, copy / subdir / item.name)
    return copy


@pytest.fixture
def lockfile(tmp_path, channel) -> Path:
    project = tmp_path / "environments" / "demo"
    project.mkdir(parents=True)
    (project / "environment.yml").write_text(SPEC)
    inputs = LockInputs(
        channel_urls={"conda-forge": channel.as_uri()},
        virtual_packages={"linux-64": LINUX},
        server_packages=("hello",),
    )
    return lock_environment(project, inputs, progress=None).lock_path


def install(lockfile: Path, prefix: Path, cache: Path, **kwargs):
    kwargs.setdefault("platform", "linux-64")
    kwargs.setdefault("mirrors", {})
    return install_lock(lockfile, prefix, cache_dir=cache, **kwargs)


def test_install_for_a_final_prefix_keeps_lock_urls(tmp_path, lockfile, channel):
    prefix, cache = tmp_path / "staging", tmp_path / "cache"
    result = install(lockfile, prefix, cache, target_prefix="/opt/env")
    assert result.packages == ("alpha=1.0=0", "beta=1.0=0", "delta=1.0=h_lockstep_0", "hello=1.0=0")
    assert (result.downloaded, result.cached) == (4, 0)
    assert (prefix / "etc/delta/prefix.txt").read_text() == "prefix=/opt/env\n"
    assert "/opt/env" in (prefix / "bin/delta").read_text()
    assert os.access(prefix / "bin/delta", os.X_OK)
    assert (prefix / "share/alpha/VERSION").read_text() == "1.0\n"
    meta = json.loads((prefix / "conda-meta/delta-1.0-h_lockstep_0.json").read_text())
    assert meta["url"] == f"{channel.as_uri()}/linux-64/delta-1.0-h_lockstep_0.conda"
    assert meta["channel"] == channel.as_uri()
    locked = {p.name: p for p in condalock.read_lockfile(lockfile).package}
    assert meta["sha256"] == locked["delta"].hash.sha256 and meta["md5"] == locked["delta"].hash.md5

    again = install(lockfile, prefix, cache, target_prefix="/opt/env")
    assert (again.downloaded, again.cached) == (0, 4)
    plain = install(lockfile, tmp_path / "plain", cache)
    assert plain.target_prefix == str(tmp_path / "plain")
    assert (
        tmp_path / "plain/etc/delta/prefix.txt"
    ).read_text() == f"prefix={(tmp_path / 'plain').resolve()}\n"


def test_a_changed_file_channel_archive_is_refused(tmp_path, lockfile, channel):
    alpha = channel / "noarch/alpha-1.0-0.conda"
    expected = hashlib.sha256(alpha.read_bytes()).hexdigest()
    shutil.copyfile(channel / "noarch/alpha-2.0-0.conda", alpha)
    actual = hashlib.sha256(alpha.read_bytes()).hexdigest()
    prefix, cache = tmp_path / "prefix", tmp_path / "cache"
    with pytest.raises(ChecksumError) as err:
        install(lockfile, prefix, cache)
    message = str(err.value)
    assert message.startswith("alpha 1.0 (0): sha256 mismatch for file://")
    assert f"the lock expects {expected}, the archive has {actual}" in message
    assert not (prefix / "conda-meta").exists()
    assert not list((cache / "archives" / expected).glob("*")), "nothing unverified is cached"


def test_a_damaged_cache_entry_is_fetched_again(tmp_path, lockfile):
    cache = tmp_path / "cache"
    install(lockfile, tmp_path / "one", cache)
    cached = next((cache / "archives").glob("*/alpha-1.0-0.conda"))
    cached.write_bytes(b"not a package")
    result = install(lockfile, tmp_path / "two", cache)
    assert (result.downloaded, result.cached) == (1, 3)
    assert (tmp_path / "two/share/alpha/VERSION").read_text() == "1.0\n"


def test_mirrors_change_where_archives_come_from_not_the_lock(tmp_path, lockfile, channel):
    moved = channel.rename(tmp_path / "moved")
    with pytest.raises(
        FetchError, match=r"^(alpha|beta|delta|hello) .*: cannot read .*is the channel there"
    ):
        install(lockfile, tmp_path / "prefix", tmp_path / "cache")
    result = install(
        lockfile,
        tmp_path / "prefix",
        tmp_path / "cache",
        mirrors={channel.as_uri(): moved.as_uri()},
    )
    assert result.downloaded == 4
    meta = json.loads((tmp_path / "prefix/conda-meta/alpha-1.0-0.json").read_text())
    assert meta["url"] == f"{channel.as_uri()}/noarch/alpha-1.0-0.conda"


@pytest.fixture
def http_channel(channel):
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(channel))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_mirror_is_downloaded_and_verified(tmp_path, lockfile, channel, http_channel):
    mirrors = {channel.as_uri(): http_channel}
    result = install(lockfile, tmp_path / "prefix", tmp_path / "cache", mirrors=mirrors)
    assert result.downloaded == 4
    (channel / "noarch/hello-1.0-0.conda").write_bytes(b"served by a bad mirror")
    with pytest.raises(
        ChecksumError, match=r"hello 1.0 \(0\): sha256 mismatch for http://.*\(mirror of file://"
    ):
        install(lockfile, tmp_path / "other", tmp_path / "cache2", mirrors=mirrors)
    (channel / "noarch/hello-1.0-0.conda").unlink()
    with pytest.raises(FetchError, match=r"hello 1.0 \(0\): could not download .*404"):
        install(lockfile, tmp_path / "third", tmp_path / "cache3", mirrors=mirrors)


def test_pip_sdists_and_missing_platforms_are_refused(tmp_path, lockfile):
    from conda_lock.lockfile.v2prelim.models import HashModel, LockedDependency

    model = condalock.read_lockfile(lockfile)
    model.package.append(
        LockedDependency(
            name="requests",
            version="2.32.3",
            manager="pip",
            platform="linux-64",
            url="https://files.pythonhosted.org/packages/requests-2.32.3.tar.gz",
            hash=HashModel(sha256="ab" * 32),
            categories={"main"},
        )
    )
    with_pip = tmp_path / "pip" / "conda-lock.yml"
    with_pip.parent.mkdir()
    condalock.write_lockfile(model, with_pip)
    with pytest.raises(
        LockstepError, match=r"requests==2.32.3 \(requests-2.32.3.tar.gz\) for linux-64 are "
        "source distributions, which lockstep builds only where the site allows"
    ):
        install(with_pip, tmp_path / "prefix", tmp_path / "cache")
    assert not (tmp_path / "prefix").exists()
    with pytest.raises(LockstepError, match="has no packages for osx-arm64; it locks linux-64"):
        install(lockfile, tmp_path / "prefix", tmp_path / "cache", platform="osx-arm64")


def test_cli_install(tmp_path, lockfile, capsys, monkeypatch):
    monkeypatch.setenv("LOCKSTEP_CONFIG", "")
    config = tmp_path / "lockstep_config.py"
    config.write_text(f"c.Lockstep.cache_dir = {str(tmp_path / 'cache')!r}\n")
    code = main(
        [
            "--config",
            str(config),
            "install",
            str(lockfile.parent),
            str(tmp_path / "env"),
            "--as",
            "/opt/env",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "installed 4 packages into" in out and "(for /opt/env)" in out
    assert out.splitlines()[-1].startswith("4 packages (4 fetched, 0 from cache) in ")
    assert (tmp_path / "cache/pkgs/archives").is_dir()
    assert (
        main(
            [
                "--config",
                str(config),
                "install",
                str(lockfile),
                str(tmp_path / "x"),
                "--as",
                "opt/env",
            ]
        )
        == 2
    )
    assert "--as opt/env: must be an absolute path" in capsys.readouterr().err


def tampered(lockfile: Path, package: str, field: str, value: str) -> None:
    """Set ``field`` of ``package``'s entry in the lock's YAML text."""
    lines = lockfile.read_text().splitlines(keepends=True)
    current = None
    for i, line in enumerate(lines):
        if line.startswith("- name: "):
            current = line.split(":", 1)[1].strip()
            if current == package and field == "name":
                lines[i] = f"- name: {value}\n"
        if current == package and line.strip().startswith(f"{field}:"):
            indent = line[: len(line) - len(line.lstrip())]
            lines[i] = f"{indent}{field}: {value}\n"
    lockfile.write_text("".join(lines))


def test_sha256_path_traversal_is_refused_before_anything_touches_disk(
    tmp_path, lockfile, capsys, monkeypatch
):
    """issue 11: ``sha256: ../../x`` used to name a cache path that the cache then deleted."""
    cache = tmp_path / "cache"
    victim = tmp_path / "x" / "alpha-1.0-0.conda"  # <cache>/archives/../../x/<file name>
    victim.parent.mkdir()
    victim.write_text("the builder's file\n")
    (cache / "archives").mkdir(parents=True)  # a warm cache: the old code then deleted it
    (tmp_path / "pkgs" / "archives").mkdir(parents=True)
    tampered(lockfile, "alpha", "sha256", "../../x")
    prefix = tmp_path / "env"
    with pytest.raises(LockstepError) as err:
        install(lockfile, prefix, cache)
    message = str(err.value)
    assert "package 'alpha': field 'hash.sha256' is '../../x'" in message
    assert "64 lowercase hex digits" in message and "`lockstep lock`" in message
    assert victim.read_text() == "the builder's file\n"
    assert list(cache.rglob("*")) == [cache / "archives"] and not prefix.exists()
    monkeypatch.setenv("LOCKSTEP_CONFIG", "")
    config = tmp_path / "lockstep_config.py"
    config.write_text(f"c.Lockstep.cache_dir = {str(tmp_path)!r}\n")  # pkgs/archives/../../x
    assert main(["--config", str(config), "install", str(lockfile), str(prefix)]) == 2
    assert "field 'hash.sha256'" in capsys.readouterr().err
    assert victim.read_text() == "the builder's file\n"
    assert list((tmp_path / "pkgs").rglob("*")) == [tmp_path / "pkgs" / "archives"]
    assert not prefix.exists()


def test_package_name_with_a_slash_is_refused(tmp_path, lockfile):
    tampered(lockfile, "beta", "name", "../beta")
    with pytest.raises(LockstepError, match="package '../beta': field 'name' is '../beta'"):
        install(lockfile, tmp_path / "env", tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_install_with_the_site_channel_policy_refuses_unlisted_channels(tmp_path, lockfile):
    from spawner.lock.policy import ChannelError, ChannelPolicy

    policy = ChannelPolicy(allowed=("https://conda.anaconda.org/conda-forge",))
    with pytest.raises(ChannelError, match="is not an allowed channel"):
        install(lockfile, tmp_path / "env", tmp_path / "cache", channels=policy)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "env").exists()
