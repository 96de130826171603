"""``lockstep build`` runs package code only inside the build sandbox (issue 11).

A hostile local channel: its ``python`` 3.11 is a shell script that, when the build runs
it to compile bytecode, writes marker files into this test's tmp dir and ``/tmp``, tries to
read the Docker credentials, tries the registry over the network, runs the environment's
``.pth`` files (one of them writes markers too), then compiles as asked with the host's
python. With the sandbox (the default) the real builder builds and pushes an image and
no marker reaches the host; with ``c.Lockstep.build_sandbox = "none"`` (the control, so
this test can fail) the markers appear.
"""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import pytest

from spawner.image.build import build_image
from spawner.lock.locking import LockInputs, lock_environment
from spawner.settings import Lockstep
from tests.channel.build import index_channel
from tests.channel.conda_pkg import PackageSpec, PkgFile, write_conda

pytestmark = [pytest.mark.docker, pytest.mark.registry]

HOSTILE_PYTHON = """#!/bin/sh
# a hostile interpreter: runs as soon as the build calls it
for marker in {markers}; do echo python > "$marker" 2>/dev/null; done
cat "$HOME/.docker/config.json" /root/.docker/config.json > {stolen} 2>/dev/null
/usr/bin/python3 -c 'import urllib.request as u; u.urlopen("http://{registry}/v2/", timeout=2)' \\
  && echo reached > {network} 2>/dev/null
here="$(dirname "$0")/.."
/usr/bin/python3 -c 'import site, sys; site.addsitedir(sys.argv[1])' \\
  "$here/lib/python3.11/site-packages"
exec /usr/bin/python3 "$@"
"""

PTH = 'import os; [open(p, "w").write("pth") for p in {markers!r}]\n'


def hostile_channel(root: Path, *, markers: list[str], pth_markers: list[str], registry: str,
                    stolen: str, network: str) -> Path:
    channel = root / "hostile-channel"
    script = HOSTILE_PYTHON.format(
        markers=" ".join(markers), stolen=stolen, network=network, registry=registry
    )
    python = PackageSpec(
        name="python", version="3.11.99", build="hostile_0", subdir="linux-64",
        files=(
            PkgFile("bin/python3.11", script.encode(), mode=0o755),
            PkgFile("bin/python3", link_target="python3.11"),
            PkgFile("lib/python3.11/hostile.py", b"VALUE = 1\n"),
        ),
    )
    evil = PackageSpec(
        name="evil", version="1.0", build="0", subdir="noarch", noarch="generic",
        files=(
            PkgFile("lib/python3.11/site-packages/evil.pth", PTH.format(markers=pth_markers)
                    .encode()),
            PkgFile("lib/python3.11/site-packages/evil/__init__.py", b"X = 1\n"),
        ),
    )
    singleuser = PackageSpec(
        name="jupyterhub-singleuser", version="9.9", build="0", subdir="noarch",
        noarch="generic",
        files=(PkgFile("bin/jupyterhub-singleuser", b"#!/bin/sh\necho fake\n", mode=0o755),),
    )
    for spec in (python, evil, singleuser):
        write_conda(spec, channel)
    index_channel(channel)
    return channel


@pytest.fixture
def hostile(tmp_path, registry, lockstep_settings):
    tag = uuid.uuid4().hex[:10]
    markers = [str(tmp_path / "marker-python"), f"/tmp/lockstep-hostile-{tag}-python"]
    pth_markers = [str(tmp_path / "marker-pth"), f"/tmp/lockstep-hostile-{tag}-pth"]
    evidence = [str(tmp_path / "stolen-credentials"), str(tmp_path / "network-reached")]
    channel = hostile_channel(tmp_path, markers=markers, pth_markers=pth_markers,
                              registry=registry, stolen=evidence[0], network=evidence[1])
    project = tmp_path / "environments" / f"hostile{tag}"
    project.mkdir(parents=True)
    (project / "project.yaml").write_text(f"name: {project.name}\n")
    (project / "environment.yml").write_text(
        "channels: [conda-forge]\ndependencies: [python=3.11, evil, jupyterhub-singleuser]\n"
    )
    lock_environment(project, LockInputs(
        channel_urls={"conda-forge": channel.as_uri()},
        virtual_packages={k: tuple(v) for k, v in lockstep_settings.virtual_packages.items()},
        server_packages=(),
    ), progress=None)
    left = markers + pth_markers + evidence
    yield project, channel, left
    for path in left:
        Path(path).unlink(missing_ok=True)


def settings_for(lockstep_settings: Lockstep, channel: Path, tmp_path: Path, **extra) -> Lockstep:
    config = copy.deepcopy(lockstep_settings.config)  # the session's settings stay as they are
    config.Lockstep.channel_urls = {"conda-forge": channel.as_uri()}
    config.Lockstep.data_dir = str(tmp_path / "state")
    for key, value in extra.items():
        setattr(config.Lockstep, key, value)
    return Lockstep(config=config)


def test_hostile_python_and_pth_leave_no_marker_on_the_host(hostile, lockstep_settings, tmp_path):
    project, channel, left = hostile
    said: list[str] = []
    result = build_image(
        project, settings_for(lockstep_settings, channel, tmp_path), progress=said.append
    )
    assert result.digest.startswith("sha256:") and not result.noop
    # the hostile interpreter did run (nothing was cached for it), in the sandbox
    assert "compiled bytecode for 2 sources (0 from the cache)" in said
    assert [p for p in left if Path(p).exists()] == []
    again = build_image(project, settings_for(lockstep_settings, channel, tmp_path))
    assert again.digest == result.digest
    assert [p for p in left if Path(p).exists()] == []


def test_control_without_the_sandbox_the_markers_appear(hostile, lockstep_settings, tmp_path):
    """The same build with the documented unsafe opt-out: proves the markers are real."""
    project, channel, left = hostile
    # the script embeds this test's markers, so its .pyc cache namespace is new: it runs
    build_image(project, settings_for(lockstep_settings, channel, tmp_path, build_sandbox="none"))
    python_markers, pth_markers = left[:2], left[2:4]
    assert all(Path(p).read_text().strip() == "python" for p in python_markers)
    assert all(Path(p).read_text() == "pth" for p in pth_markers)
    assert Path(left[5]).read_text() == "reached\n"  # the registry, over the network
