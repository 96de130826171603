"""A lock with conda and pip packages, built into an image, run, verified, rebuilt.

Real wheels from the local test index (``tests/channel/pypi_index``), the jupyter test
channel (which has ``requests`` as a conda package), the real registry and Docker engine.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from spawner.image.build import RECORD, build_image
from spawner.lock.locking import LockInputs, lock_environment
from spawner.lock.pypi import PipInputs
from spawner.settings import Lockstep
from spawner.verify.check import check_image
from tests.channel.pypi_index import MIXED_SPEC as SPEC
from tests.support.engine import run_image as _run

pytestmark = [pytest.mark.docker, pytest.mark.registry]


@pytest.fixture(scope="module")
def mixed(environments_dir, jupyter_channel, lockstep_settings, pypi_index):
    folder = environments_dir / "mixed"
    folder.mkdir(exist_ok=True)
    (folder / "environment.yml").write_text(SPEC)
    (folder / "project.yaml").write_text("name: mixed\n")
    inputs = LockInputs(
        channel_urls={"conda-forge": jupyter_channel.as_uri()},
        virtual_packages={k: tuple(v) for k, v in lockstep_settings.virtual_packages.items()},
        server_packages=tuple(lockstep_settings.server_packages),
        pip=PipInputs(index_url=pypi_index, insecure_hosts=("127.0.0.1",),
                      cache_dir=lockstep_settings.cache_path("pkgs")),
    )
    lock_environment(folder, inputs, progress=None)
    return folder


def test_pip_packages_install_build_run_verify_and_rebuild_to_one_digest(
    mixed, lockstep_settings, docker_client, tmp_path
):
    first = build_image(mixed, lockstep_settings)
    docker_client.images.pull(first.reference)
    script = (
        "import json, msgpack, requests, requests_toolbelt, pathlib; "
        "site = pathlib.Path(msgpack.__file__).parent.parent; "
        "print(json.dumps({'msgpack': msgpack.unpackb(msgpack.packb({'a': 1})), "
        "'toolbelt': requests_toolbelt.__version__, 'requests': requests.__file__, "
        "'installer': (site / 'msgpack-1.2.4.dist-info' / 'INSTALLER').read_text(), "
        "'record': (site / 'msgpack-1.2.4.dist-info' / 'RECORD').read_text(), "
        "'pyc': sorted(p.name for p in (site / 'msgpack' / '__pycache__').iterdir()), "
        "'requests_dists': sorted(p.name for p in site.glob('requests-*.dist-info'))}))"
    )
    out = json.loads(_run(docker_client, first.reference,
                          ["/opt/env/bin/python", "-c", script]).strip().splitlines()[-1])
    assert out["msgpack"] == {"a": 1} and out["toolbelt"] == "1.0.0"
    assert out["installer"] == "lockstep\n"
    assert "/tmp" not in out["record"] and "staging" not in out["record"]
    assert "__init__.cpython-311.pyc" in out["pyc"]
    assert len(out["requests_dists"]) == 1  # conda's requests only, never a PyPI copy
    check = check_image(lockstep_settings, first.reference, mixed / "conda-lock.yml")
    assert check.differences == () and check.same_lock, check.differences
    # a lock naming another msgpack version: verify names the pip package
    other = mixed.parent / "mixed-other"
    other.mkdir(exist_ok=True)
    text = (mixed / "conda-lock.yml").read_text().replace("version: 1.2.4", "version: 1.2.3")
    (other / "conda-lock.yml").write_text(text)
    changed = check_image(lockstep_settings, first.reference, other / "conda-lock.yml")
    assert [d.describe() for d in changed.differences if d.package.startswith("pypi:")] == [
        "changed  pypi:msgpack: version 1.2.3 (lock) != 1.2.4 (image)"
    ]
    # a second build from scratch (no records, no layer cache) gives the same digest; in a
    # cache folder of its own, so the suite's layer cache (and other sessions') stays warm
    (mixed / RECORD).unlink()
    cold = copy.deepcopy(lockstep_settings.config)
    cold.Lockstep.cache_dir = str(tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    for shared in ("base", "repodata", "pkgs", "pyc"):  # kept warm, as before: not at issue
        lockstep_settings.cache_path(shared).mkdir(parents=True, exist_ok=True)
        (tmp_path / "cache" / shared).symlink_to(lockstep_settings.cache_path(shared))
    second = build_image(mixed, Lockstep(config=cold))
    assert second.digest == first.digest
    assert Path(mixed / RECORD).is_file()


def test_mixed_image_runs_a_job_importing_pip_packages_and_serves(
    mixed, lockstep_settings, registry, docker_client, tmp_path_factory, capfd
):
    """The mixed image, promoted to prod, runs ``lockstep run`` (``spawner.docker.jobs``,
    hardened like a server) importing its pip packages, and its Jupyter server answers."""
    from tests.docker.lockstep_site import ForecastSite

    build = build_image(mixed, lockstep_settings)
    site = ForecastSite(root=tmp_path_factory.mktemp("mixed-envs"), lock=mixed / "conda-lock.yml",
                        build=build, registry=registry, tmp=tmp_path_factory.mktemp("mixed-site"))
    try:
        site.push_build()
        assert site.to_prod() == build.digest
        code = site.lockstep("run", site.name, "--stage", "prod", "--", "python", "-c", SERVE)
        out, err = capfd.readouterr()
        assert code == 0, err
        report = json.loads(out.strip().splitlines()[-1])
        assert report["msgpack"] == {"a": 1} and report["toolbelt"] == "1.0.0"
        assert report["server"]["version"][0].isdigit(), report
        assert site.containers(docker_client) == []
    finally:
        site.cleanup(docker_client)


SERVE = r"""
import json, os, subprocess, sys, time, urllib.request
import msgpack, requests_toolbelt
server = subprocess.Popen(
    [os.path.join(sys.prefix, 'bin', 'jupyter-server'), '--ip=127.0.0.1', '--port=8899',
     '--no-browser', '--IdentityProvider.token=', '--ServerApp.root_dir=/tmp'],
    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
answer = None
for _ in range(120):
    try:
        answer = json.load(urllib.request.urlopen('http://127.0.0.1:8899/api', timeout=2))
        break
    except OSError:
        time.sleep(0.5)
server.terminate()
err = server.communicate(timeout=30)[1].decode()[-1500:]
print(json.dumps({'msgpack': msgpack.unpackb(msgpack.packb({'a': 1})),
                  'toolbelt': requests_toolbelt.__version__, 'server': answer or err}))
"""
