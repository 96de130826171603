"""``lockstep build`` refuses an unsafe lock, an unlisted channel or a missing sandbox
before anything is fetched, written or sent (issue 11).

Locks are solved for real (rattler, in its subprocess) against the tiny offline channel;
the registry address is one nothing listens on, so a build that got as far as the
registry would fail with a connection error instead of the refusal asserted here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spawner.cli import main
from spawner.errors import LockstepError
from spawner.image.build import build_image
from spawner.lock.locking import LockInputs, lock_environment
from spawner.settings import Lockstep

LINUX = ["__unix=0=0", "__linux=5.10=0", "__glibc=2.36=0", "__archspec=1=x86_64"]


@pytest.fixture
def project(tmp_path, tiny_channel) -> Path:
    folder = tmp_path / "environments" / "demo"
    folder.mkdir(parents=True)
    (folder / "environment.yml").write_text("channels: [conda-forge]\ndependencies: [beta]\n")
    (folder / "project.yaml").write_text("name: demo\n")
    inputs = LockInputs(
        channel_urls={"conda-forge": tiny_channel.as_uri()},
        virtual_packages={"linux-64": LINUX},
        server_packages=(),
    )
    lock_environment(folder, inputs, progress=None)
    return folder


def site(tmp_path: Path, channel: Path, **extra) -> dict:
    values = dict(
        registry="127.0.0.1:9/lockstep",
        cache_dir=str(tmp_path / "cache"),
        data_dir=str(tmp_path / "state"),
        channel_urls={"conda-forge": channel.as_uri()},
    )
    values.update(extra)
    return values


def untouched(tmp_path: Path, project: Path) -> None:
    assert not (tmp_path / "cache").exists() and not (tmp_path / "state").exists()
    assert sorted(p.name for p in project.iterdir()) == [
        "conda-lock.yml", "environment.yml", "project.yaml"
    ]


def test_sha256_path_traversal_refused_before_anything(tmp_path, project, tiny_channel):
    lock = project / "conda-lock.yml"
    text = lock.read_text()
    first = next(line for line in text.splitlines() if line.strip().startswith("sha256:"))
    lock.write_text(text.replace(first, first.split(":")[0] + ": ../../x", 1))
    with pytest.raises(LockstepError) as err:
        build_image(project, Lockstep(**site(tmp_path, tiny_channel)))
    assert "field 'hash.sha256' is '../../x'" in str(err.value)
    assert err.value.exit_code == 2
    untouched(tmp_path, project)


def test_unlisted_channel_refused_before_anything(tmp_path, project, tiny_channel):
    settings = site(tmp_path, tiny_channel, channel_urls={"conda-forge": "https://x.example/cf"})
    with pytest.raises(LockstepError) as err:
        build_image(project, Lockstep(**settings))
    message = str(err.value)
    assert f"is from channel {tiny_channel.as_uri()!r}" in message
    assert "c.Lockstep.allowed_channels" in message and err.value.exit_code == 2
    untouched(tmp_path, project)


def test_cli_build_exits_2_on_an_unlisted_channel(tmp_path, project, tiny_channel, capsys):
    config = tmp_path / "lockstep_config.py"
    values = site(tmp_path, tiny_channel, channel_urls={"conda-forge": "https://x.example/cf"})
    config.write_text("".join(f"c.Lockstep.{k} = {v!r}\n" for k, v in values.items()))
    assert main(["--config", str(config), "build", str(project)]) == 2
    err = capsys.readouterr().err
    assert "is not an allowed channel" in err and "Traceback" not in err
    untouched(tmp_path, project)


def test_missing_bwrap_names_the_package_and_the_opt_out(
    tmp_path, project, tiny_channel, monkeypatch
):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(LockstepError) as err:
        build_image(project, Lockstep(**site(tmp_path, tiny_channel)))
    message = str(err.value)
    assert "apt-get install bubblewrap" in message
    assert 'c.Lockstep.build_sandbox = "none"' in message and "unsafe" in message
    untouched(tmp_path, project)
