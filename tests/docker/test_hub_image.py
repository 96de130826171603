"""The hub image, built by lockstep's own builder from ``images/hub``, twice, and run.

Two copies of this checkout (different paths, fresh mtimes) each package lockstep as a
conda package (``tests/channel/lockstep_pkg.py``: ``pip wheel --no-deps``, converted), lock
``images/hub/environment.yml`` against the offline hub channel and build the hub image
without a daemon into the real registry: the first with ``lockstep build-hub --lock`` run
from (and importing) its checkout, the second in-process and forced to install, compile
and lay out everything again (its build index is ignored). Both give the same lock bytes
and the same digest. The image is then pulled by digest into the real engine and run
read-only, unprivileged, with a hub config selecting ``lockstep-kube``: it loads the
config and answers ``GET /hub/api`` with JupyterHub's version. Expensive parts are cached
under ``~/.cache/lockstep`` by their inputs (channels, packages, bytecode, layers).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from traitlets.config import Config

from spawner.image import localregistry
from spawner.image.build import BuildResult
from spawner.image.hubimage import HUB_CMD, HUB_CONFIG, HUB_WORKDIR, HubBuilder, lock_hub
from spawner.settings import Lockstep
from tests.channel.conda_pkg import BuildInputMissing
from tests.channel.hub import cached_hub_channel, cached_lockstep_channel
from tests.channel.lockstep_pkg import SOURCES
from tests.docker.lockstep_site import free_port
from tests.support.engine import TEST_LABELS, missing

pytestmark = [pytest.mark.docker, pytest.mark.registry]
REPO = Path(__file__).resolve().parents[2]
HUB_REGISTRY = "127.0.0.1:5745"
HUB_REGISTRY_ROOT = Path.home() / ".cache" / "lockstep" / "test-hub-registry"

#: A hub config with lockstep's Kubernetes spawner selected and nothing that needs a cluster:
#: no configurable-http-proxy (a proxy class that keeps no routes), sqlite and the cookie
#: secret in /tmp (the container's root filesystem is read-only).
HUB_CONFIG_TEXT = '''
from jupyterhub.proxy import Proxy


class NoProxy(Proxy):
    """Stands in for configurable-http-proxy: keeps no routes, starts nothing."""

    should_start = False

    async def add_route(self, routespec, target, data):
        pass

    async def delete_route(self, routespec):
        pass

    async def get_all_routes(self):
        return {}


c.JupyterHub.proxy_class = NoProxy
c.JupyterHub.spawner_class = "lockstep-kube"
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.db_url = "sqlite:////tmp/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/tmp/jupyterhub_cookie_secret"
c.JupyterHub.hub_ip = "0.0.0.0"
c.Lockstep.environments_dir = "/tmp/environments"
c.Lockstep.data_dir = "/tmp/lockstep"
'''


def checkout(dest: Path) -> Path:
    """A copy of what the hub image is made of: lockstep's sources, images/base and hub."""
    for name in SOURCES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dest / name)
    shutil.copytree(REPO / "images" / "base", dest / "images" / "base")  # the base's definition
    (dest / "images" / "hub").mkdir(parents=True)
    shutil.copy(REPO / "images" / "hub" / "environment.yml", dest / "images" / "hub")
    return dest


class ForcedHubBuilder(HubBuilder):
    """A hub build that ignores the build index: it installs and lays out everything."""

    def _known(self, key: str):
        return None


@pytest.fixture(scope="module")
def hub_registry():
    """The hub test's own registry: its storage is a cache (``~/.cache/lockstep/``), so a
    warm run pushes nothing, and other sessions' registries coming and going on :5000 do
    not touch it. Stopped at the end only when this module started it."""
    if not shutil.which("docker-registry") and not localregistry.answers(HUB_REGISTRY):
        missing("docker-registry is not installed (apt-get install docker-registry)")
    started = not localregistry.answers(HUB_REGISTRY)
    localregistry.start(HUB_REGISTRY_ROOT, HUB_REGISTRY)
    yield HUB_REGISTRY
    if started:
        localregistry.stop(HUB_REGISTRY_ROOT, HUB_REGISTRY)


@pytest.fixture(scope="module")
def hub_channel() -> Path:
    try:
        return cached_hub_channel()
    except BuildInputMissing as exc:
        pytest.skip(f"cannot build the hub channel: {exc}")


def site_settings(registry: str, state: Path, hub_channel: Path, lockstep_channel: Path):
    config = Config()
    config.Lockstep.registry = f"{registry}/lockstep"
    config.Lockstep.data_dir = str(state)
    config.Lockstep.channel_urls = {"conda-forge": hub_channel.as_uri(),
                                    "lockstep": lockstep_channel.as_uri()}
    return Lockstep(config=config)


def cli_build(root: Path, settings: Lockstep) -> BuildResult:
    """``lockstep build-hub --lock images/hub --json``, run from (and importing) ``root``."""
    config = root / "lockstep_config.py"
    lines = [f"c.Lockstep.{k} = {v!r}\n" for k, v in settings.config.Lockstep.items()]
    config.write_text("".join(lines))
    proc = subprocess.run(
        [sys.executable, "-m", "spawner.cli", "--config", str(config), "build-hub", "--lock",
         "images/hub", "--json"], cwd=root, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout.splitlines()[-1])
    data["layer_digests"] = tuple(data["layer_digests"])
    return BuildResult(**data), proc.stderr.splitlines()


@pytest.fixture(scope="module")
def two_builds(hub_registry, hub_channel, tmp_path_factory):
    """(result, lock bytes, progress lines) for each of two checkouts: the first built by
    the ``lockstep build-hub`` command run from it, the second in-process, forced."""
    # one snapshot of this tree (others may edit it meanwhile), then two checkouts of it
    snapshot = checkout(tmp_path_factory.mktemp("snapshot"))
    results = []
    for index in range(2):
        root = tmp_path_factory.mktemp(f"checkout{index}") / "lockstep"
        shutil.copytree(snapshot, root)
        try:
            channel = cached_lockstep_channel(root)
        except BuildInputMissing as exc:
            pytest.skip(f"cannot package lockstep: {exc}")
        settings = site_settings(hub_registry, root / "state", hub_channel, channel)
        folder = root / "images" / "hub"
        if index == 0:
            result, messages = cli_build(root, settings)
        else:
            lock_hub(folder, settings)
            messages = []
            result = ForcedHubBuilder(folder, settings, progress=messages.append).run()
        results.append((result, (folder / "conda-lock.yml").read_bytes(), messages))
    return results


def test_two_checkouts_give_the_same_hub_digest(two_builds):
    (first, lock1, _), (second, lock2, messages) = two_builds
    assert lock1 == lock2  # same lockstep package bytes -> same channel folder -> same lock
    assert any(m.startswith("installing ") for m in messages)  # the second really rebuilt
    assert second.digest == first.digest
    assert second.reference == first.reference
    assert first.reference.split("@")[0].endswith("/lockstep/hub")
    names = set(locked_versions(lock1))
    assert {"jupyterhub", "jupyterhub-kubespawner", "lockstep", "oauthenticator",
            "pycurl"} <= names
    assert not {"ipykernel", "jupyterhub-singleuser", "nbclient"} & names  # no server packages


def locked_versions(lock: bytes) -> dict[str, str]:
    return {p["name"]: p["version"] for p in yaml.safe_load(lock)["package"]}


def wait_for_api(url: str, container, timeout: float = 60.0) -> dict:
    import docker.errors

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        try:
            container.reload()
        except docker.errors.NotFound:  # another session's cleanup by the test label
            raise AssertionError(f"the hub container {container.name} was removed under the "
                                 "test (another test session's cleanup?); run it again") from None
        if container.status == "exited":
            break
        time.sleep(0.3)
    logs = container.logs(tail=60).decode(errors="replace")
    raise AssertionError(f"the hub did not answer {url} within {timeout:.0f} s:\n{logs}")


def test_hub_image_loads_a_lockstep_kube_config_and_answers_the_api(
    two_builds, docker_client, tmp_path
):
    result, lock, _ = two_builds[0]
    docker_client.images.pull(result.reference)
    config = docker_client.api.inspect_image(result.reference)["Config"]
    assert config["User"] == "1000:100"
    assert config["Cmd"] == list(HUB_CMD) and config["WorkingDir"] == HUB_WORKDIR
    assert config["Labels"]["org.lockstep.lock-hash"] == result.lock_hash
    assert result.lock_hash.endswith(hashlib.sha256(lock).hexdigest())
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "jupyterhub_config.py").write_text(HUB_CONFIG_TEXT)
    conf_dir.chmod(0o755)
    (conf_dir / "jupyterhub_config.py").chmod(0o644)
    port = free_port()
    container = docker_client.containers.run(
        result.reference, detach=True, labels=TEST_LABELS, read_only=True,
        tmpfs={"/tmp": "rw,size=64m"}, cap_drop=["ALL"], security_opt=["no-new-privileges"],
        ports={"8081/tcp": ("127.0.0.1", port)},
        volumes={str(conf_dir): {"bind": str(Path(HUB_CONFIG).parent), "mode": "ro"}},
    )
    try:
        answer = wait_for_api(f"http://127.0.0.1:{port}/hub/api", container)
        logs = container.logs().decode(errors="replace")
        uid = container.exec_run(["id", "-u"]).output.decode().strip()
    finally:
        container.remove(force=True)
    assert answer == {"version": locked_versions(lock)["jupyterhub"]}
    assert "Using Spawner: spawner.kube.spawner.LockstepKubeSpawner" in logs
    assert uid == "1000"
