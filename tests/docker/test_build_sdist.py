"""A lock with a pip sdist (the site allows sdists): built in the sandbox, imaged, verified.

The local test index (``tests/channel/pypi_index``) serves ``sdistdemo`` as a pure-Python
sdist (flit_core backend) and flit_core as a real wheel; the jupyter test channel gives
the server. Real uv, rattler, bubblewrap, registry and Docker engine.
"""

from __future__ import annotations

import copy
import json
from argparse import Namespace

import pytest

from spawner.commands import sbom as sbom_command
from spawner.image.build import RECORD, build_image
from spawner.lock import condalock
from spawner.lock.locking import LockInputs, lock_environment
from spawner.lock.pypi import PipInputs
from spawner.settings import Lockstep
from spawner.verify.check import check_image
from tests.channel.pypi_index import SDIST_SPEC
from tests.support.engine import run_image

pytestmark = [pytest.mark.docker, pytest.mark.registry]


@pytest.fixture(scope="module")
def sdist_site(environments_dir, jupyter_channel, lockstep_settings, pypi_index):
    config = copy.deepcopy(lockstep_settings.config)
    config.Lockstep.pip_allow_sdists = True
    settings = Lockstep(config=config)
    folder = environments_dir / "withsdist"
    folder.mkdir(exist_ok=True)
    (folder / "environment.yml").write_text(SDIST_SPEC)
    (folder / "project.yaml").write_text("name: withsdist\n")
    inputs = LockInputs(
        channel_urls={"conda-forge": jupyter_channel.as_uri()},
        virtual_packages={k: tuple(v) for k, v in settings.virtual_packages.items()},
        server_packages=tuple(settings.server_packages),
        pip=PipInputs(
            index_url=pypi_index,
            insecure_hosts=("127.0.0.1",),
            allow_sdists=True,
            cache_dir=settings.cache_path("pkgs"),
        ),
    )
    lock_environment(folder, inputs, progress=None)
    return folder, settings


def test_sdist_builds_into_the_image_verifies_and_rebuilds_to_one_digest(
    sdist_site, docker_client, tmp_path
):
    folder, settings = sdist_site
    sdist = next(
        p
        for p in condalock.read_lockfile(folder / "conda-lock.yml").package
        if p.name == "sdistdemo"
    )
    first = build_image(folder, settings)
    docker_client.images.pull(first.reference)
    script = (
        "import json, pathlib, sdistdemo; "
        "info = pathlib.Path(sdistdemo.__file__).parent.parent / 'sdistdemo-1.0.dist-info';"
        " print(json.dumps([sdistdemo.ANSWER, "
        "json.loads((info / 'LOCKSTEP_BUILT.json').read_text())]))"
    )
    out = run_image(docker_client, first.reference, ["/opt/env/bin/python", "-c", script])
    answer, built = json.loads(out.strip().splitlines()[-1])
    assert answer == 42
    assert built["sdist"] == {"url": sdist.url, "sha256": sdist.hash.sha256}
    assert built["wheel"]["file"].startswith("sdistdemo-1.0-")
    assert len(built["wheel"]["sha256"]) == 64
    record = json.loads((folder / RECORD).read_text())  # the build record names the build
    assert record["built_wheels"] == [
        {
            "platform": "linux-64",
            "name": "sdistdemo",
            "version": "1.0",
            "sdist_url": sdist.url,
            "sdist_sha256": sdist.hash.sha256,
            "wheel": built["wheel"]["file"],
            "wheel_sha256": built["wheel"]["sha256"],
            "backend": "flit_core.buildapi",
        }
    ]
    bom = tmp_path / "image.cdx.json"  # the image's SBOM carries the wheel it holds
    args = Namespace(
        target=first.reference, output=str(bom), stage=None, platform="linux-64", timestamp=False
    )
    assert sbom_command.run(args, settings) == 0  # this site's settings, not a config file
    (item,) = [c for c in json.loads(bom.read_text())["components"] if c["name"] == "sdistdemo"]
    assert item["hashes"] == [{"alg": "SHA-256", "content": sdist.hash.sha256}]
    assert {"name": "org.lockstep:built-wheel-sha256", "value": built["wheel"]["sha256"]} in (
        item["properties"]
    )
    check = check_image(settings, first.reference, folder / "conda-lock.yml")
    assert check.differences == () and check.same_lock, check.differences
    (folder / RECORD).unlink()  # no build record: the SBOM reads the image's own record
    assert sbom_command.run(args, settings) == 0
    (item,) = [c for c in json.loads(bom.read_text())["components"] if c["name"] == "sdistdemo"]
    assert {"name": "org.lockstep:built-wheel-sha256", "value": built["wheel"]["sha256"]} in (
        item["properties"]
    )
    # a cold rebuild: the sdist is built again, same bytes
    cold = copy.deepcopy(settings.config)  # no layer/.pyc/sdist cache; the suite's stay warm
    cold.Lockstep.cache_dir = str(tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    for shared in ("base", "repodata"):  # the Debian base and conda metadata are not at issue
        (tmp_path / "cache" / shared).symlink_to(settings.cache_path(shared))
    second = build_image(folder, Lockstep(config=cold))
    assert second.digest == first.digest


def test_a_site_without_sdists_refuses_the_build_naming_the_package(sdist_site):
    from spawner.errors import LockstepError

    folder, settings = sdist_site
    config = copy.deepcopy(settings.config)
    config.Lockstep.pip_allow_sdists = False
    # refused from the lock before anything else, even when this lock's image is built and
    # recorded already (a no-op build would otherwise never reach the install)
    assert (folder / RECORD).is_file()
    with pytest.raises(LockstepError, match="sdistdemo==1.0.*pip_allow_sdists = True"):
        build_image(folder, Lockstep(config=config))
    (folder / RECORD).unlink()  # no record of a build: still refused, nothing pushed
    with pytest.raises(LockstepError, match="sdistdemo==1.0.*pip_allow_sdists = True"):
        build_image(folder, Lockstep(config=config))
