"""Shared fixtures for tests against a real Docker engine and a real registry.

* ``docker_client``: a docker-py client; the test is skipped, with the reason, only when
  no engine answers (``scripts/setup.sh`` starts dockerd).
* ``registry``: ``REGISTRY`` (``$LOCKSTEP_TEST_REGISTRY``, else ``"127.0.0.1:5000"``), the
  local registry, started once per session (``spawner.image.localregistry``, storage in a
  session temp dir) unless one already answers there; stopped at the end only when this
  session started it. ``scripts/test.sh`` gives each engine lane its own.
* ``lockstep_settings``: ``Lockstep`` settings pushing to ``<registry>/lockstep``, with the
  default package/layer/pyc caches (so repeated runs are warm), a temp ``data_dir`` and
  the offline channel as ``conda-forge`` (so ``c.Lockstep.allowed_channels`` passes).
* ``locked_project(name, dependencies, server_packages=None)``: a project folder under a
  session ``environments/`` with ``environment.yml``, ``project.yaml`` and a
  ``conda-lock.yml`` solved against the offline test channel (``jupyter_channel``, from
  ``tests/conftest.py``).
* ``built_image(project_dir)``: ``lockstep build`` of that folder, a ``BuildResult``;
  cached by lock hash for the session.

Containers these tests start carry ``TEST_LABELS``: ``org.lockstep.test=1``, or
``org.lockstep.test=<lane>`` when ``$LOCKSTEP_TEST_LANE`` names this process's lane
(``scripts/test.sh``, ``tests/conftest.py``); the session removes the containers with
exactly that label at its end, never another lane's or another session's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from traitlets.config import Config

from spawner.image import localregistry
from spawner.settings import Lockstep

# LOCKSTEP_TEST_REGISTRY=127.0.0.1:PORT: a registry of this session's own, apart from a
# shared 127.0.0.1:5000 that another session may stop or wipe while this one runs
REGISTRY = os.environ.get("LOCKSTEP_TEST_REGISTRY") or localregistry.DEFAULT_ADDR
TEST_LABEL = "org.lockstep.test"
# LOCKSTEP_TEST_LANE=hubs|images: scripts/test.sh runs the two engine lanes at once; each
# labels its containers with its lane and removes only those at the end
TEST_LABELS = {TEST_LABEL: os.environ.get("LOCKSTEP_TEST_LANE") or "1"}
# scripts/test.sh sets LOCKSTEP_REQUIRE_ENGINE=1: it has started dockerd and the rest, so a
# missing part there is a failure to report, never a quiet skip of every engine test
REQUIRED = os.environ.get("LOCKSTEP_REQUIRE_ENGINE") == "1"


def missing(reason: str) -> None:
    """Skip for ``reason`` (a developer without Docker), or fail under ``scripts/test.sh``."""
    if REQUIRED:
        pytest.fail(
            f"{reason} (LOCKSTEP_REQUIRE_ENGINE=1: scripts/test.sh started it)", pytrace=False
        )
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client():
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # the reason is what the person needs to know
        missing(f"no Docker engine reachable ({exc.__class__.__name__}); run scripts/setup.sh")
    yield client
    mine = f"{TEST_LABEL}={TEST_LABELS[TEST_LABEL]}"
    for container in client.containers.list(all=True, filters={"label": mine}):
        container.remove(force=True)
    client.close()


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> str:
    if not shutil.which("docker-registry") and not localregistry.answers(REGISTRY):
        missing("docker-registry is not installed (apt-get install docker-registry)")
    root = tmp_path_factory.mktemp("registry")
    state = localregistry.start(root, REGISTRY)
    yield REGISTRY
    if state.managed and state.root == str(root):
        localregistry.stop(root, REGISTRY)


@pytest.fixture(scope="session")
def environments_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("environments")


def _settings_config(registry: str, data_dir: Path, environments: Path, **extra) -> Config:
    config = Config()
    config.Lockstep.registry = f"{registry}/lockstep"
    config.Lockstep.data_dir = str(data_dir)
    config.Lockstep.environments_dir = str(environments)
    for key, value in extra.items():
        setattr(config.Lockstep, key, value)
    return config


@pytest.fixture(scope="session")
def lockstep_settings(registry, environments_dir, tmp_path_factory, jupyter_channel) -> Lockstep:
    # the offline channel is the site's conda-forge, so builds allow its file:// URLs
    return Lockstep(
        config=_settings_config(
            registry,
            tmp_path_factory.mktemp("state"),
            environments_dir,
            channel_urls={"conda-forge": jupyter_channel.as_uri()},
        )
    )


@pytest.fixture(scope="session")
def locked_project(jupyter_channel, environments_dir, lockstep_settings):
    """Factory: ``locked_project("iris", ["python=3.11", "numpy"])`` -> project folder."""
    from spawner.lock.locking import LockInputs, lock_environment

    def make(name: str, dependencies, *, server_packages=None, root: Path | None = None) -> Path:
        project_dir = (root or environments_dir) / name
        project_dir.mkdir(parents=True, exist_ok=True)
        deps = "".join(f"  - {d}\n" for d in dependencies)
        spec = f"name: {name}\nchannels:\n  - conda-forge\ndependencies:\n{deps}"
        if not (project_dir / "conda-lock.yml").is_file() or (
            (project_dir / "environment.yml").read_text() != spec
        ):
            (project_dir / "environment.yml").write_text(spec)
            (project_dir / "project.yaml").write_text(f"name: {name}\n")
            servers = (
                lockstep_settings.server_packages if server_packages is None else server_packages
            )
            inputs = LockInputs(
                channel_urls={"conda-forge": jupyter_channel.as_uri()},
                platforms=("linux-64",),
                virtual_packages={
                    k: tuple(v) for k, v in lockstep_settings.virtual_packages.items()
                },
                server_packages=tuple(servers),
            )
            lock_environment(project_dir, inputs, progress=None)
        return project_dir

    return make


@pytest.fixture(scope="session")
def built_image(lockstep_settings):
    """Factory: ``built_image(project_dir)`` -> ``BuildResult`` (cached by lock hash)."""
    from spawner.image.build import build_image, lock_hash

    cache: dict[str, object] = {}

    def build(project_dir: Path, settings: Lockstep | None = None):
        key = lock_hash(Path(project_dir) / "conda-lock.yml") + str(Path(project_dir).name)
        if settings is not None or key not in cache:
            result = build_image(Path(project_dir), settings or lockstep_settings)
            if settings is not None:
                return result
            cache[key] = result
        return cache[key]

    return build


def run_image(docker_client, image: str, command: list[str]) -> str:
    """Run ``command`` in ``image`` to its end (labelled, always removed); its output.
    Fails the test when it exits non-zero."""
    container = docker_client.containers.run(image, command, detach=True, labels=TEST_LABELS)
    try:
        status = container.wait(timeout=120)
        logs = container.logs().decode()
        assert status["StatusCode"] == 0, logs
        return logs
    finally:
        container.remove(force=True)


def remove_project(api, project: str) -> None:
    """Remove the volumes and networks lockstep made for ``project`` (labelled with it)."""
    selector = {"label": f"org.lockstep.project={project}"}
    for volume in (api.volumes(filters=selector) or {}).get("Volumes") or []:
        api.remove_volume(volume["Name"], force=True)
    for network in api.networks(filters=selector):
        api.remove_network(network["Id"])
