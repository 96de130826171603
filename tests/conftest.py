"""Suite-wide fixtures, as plugins: the offline conda channels (built once, cached by their
inputs) and the real Docker engine and registry (``tests/support/engine.py``).

Every test that touches the one Docker engine, a session registry, host iptables or a real
hub is marked ``engine`` here; the pure tests (renderers, kmock, helm, locks, parsers) are
not. Each engine test also gets the mark of one of two *lanes*, and ``scripts/test.sh``
runs three pytest processes at once: the pure tests (``-m "not engine"``) and one per lane
(``-m "engine and lane_hubs"``, ``-m "engine and lane_images"``), each lane one test at a
time. The lanes share nothing a test fixes by name:

* ``lane_hubs``: every file that starts a real JupyterHub (``tests/e2e/``, where servers
  are named ``lockstep-<user>`` and the hub fixtures remove every ``e2e-*`` project's
  containers, networks and volumes; ``test_demo`` runs ``scripts/demo.sh``, which uses the
  registry on 127.0.0.1:5000 and removes the networks and volumes of projects ``forecast``,
  ``sandbox`` and ``vision``, so no file of the other lane may run those projects).
  This lane's registry is the default one (``LOCKSTEP_TEST_REGISTRY`` or 127.0.0.1:5000),
  so the demo finds it.
* ``lane_images``: the files in ``IMAGES_LANE``, read and found to use only names of their
  own (uuid project names and registry namespaces, their own ports and image tags; e.g.
  ``test_promote_notebooks`` runs the example projects as ``<p>-<uuid>``) and
  what is shared by design: the build caches under ``~/.cache/lockstep`` (written by
  rename) and lockstep's iptables chains (one writer at a time under a host-wide lock,
  each write keeping the ports and destinations others wrote). ``scripts/test.sh`` gives
  this lane a registry port of its own.

A file in neither list runs in ``lane_hubs``, one at a time with the hubs: the safe side.
Read a new engine file for fixed container, network or volume names, fixed host ports,
removal by label or prefix and the registry on 127.0.0.1:5000 before adding it to
``IMAGES_LANE`` (balance: ``--durations`` of the two lanes should stay close).
"""

import pytest

pytest_plugins = ["tests.channel.fixtures", "tests.support.engine"]

# a test under these folders, with one of these marks or using one of these fixtures (its
# own or through another fixture) shares the engine
ENGINE_DIRS = ("tests/docker/", "tests/e2e/")
ENGINE_MARKS = {"docker", "registry", "e2e"}
ENGINE_FIXTURES = {
    "docker_client",
    "docker_api",
    "registry",
    "lockstep_settings",
    "locked_project",
    "built_image",
}

HUBS, IMAGES = "lane_hubs", "lane_images"
# engine test files that may run beside the hubs (see the docstring); paths from the root
IMAGES_LANE = (
    "tests/docker/test_audit_engine.py",
    "tests/docker/test_build.py",
    "tests/docker/test_build_cuda.py",
    "tests/docker/test_build_pip.py",
    "tests/docker/test_build_platforms.py",
    "tests/docker/test_build_sandbox.py",
    "tests/docker/test_build_sdist.py",
    "tests/docker/test_cuda_refusal.py",
    "tests/docker/test_data_submounts.py",
    "tests/docker/test_engine_smoke.py",
    "tests/docker/test_firewall_parity.py",
    "tests/docker/test_gpu_cdi_podman.py",
    "tests/docker/test_gvisor_volume_init.py",
    "tests/docker/test_hub_image.py",
    "tests/docker/test_jobs.py",
    "tests/docker/test_model_fetch.py",
    "tests/docker/test_model_service.py",
    "tests/docker/test_models.py",
    "tests/docker/test_prepull_promote.py",
    "tests/docker/test_promote.py",
    "tests/docker/test_promote_notebooks.py",
    "tests/docker/test_pull_sharing.py",
    "tests/docker/test_sbom_image.py",
    "tests/docker/test_services.py",
    "tests/docker/test_site_runtime.py",
    "tests/docker/test_verify_memo.py",
    "tests/docker/test_volume_init.py",
    "tests/docker/test_workspace_seed.py",
    "tests/k8s/test_chart_services.py",
    "tests/unit/image/test_fastbuild.py",
    "tests/unit/launch/test_choice_glue.py",
)


def in_engine_group(item) -> bool:
    """Whether ``item`` uses the shared engine, registry or host network state."""
    path = str(item.fspath).replace("\\", "/")
    if any(folder in path for folder in ENGINE_DIRS):
        return True
    if ENGINE_MARKS & {mark.name for mark in item.iter_markers()}:
        return True
    return bool(ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())))


def lane_of(item) -> str:
    """``lane_images`` for a file in ``IMAGES_LANE``, else ``lane_hubs``."""
    path = str(item.fspath).replace("\\", "/")
    return IMAGES if path.endswith(tuple("/" + name for name in IMAGES_LANE)) else HUBS


def pytest_configure(config):
    config.addinivalue_line("markers", f"{HUBS}: engine test run with the hubs (tests/conftest.py)")
    config.addinivalue_line(
        "markers", f"{IMAGES}: engine test run beside the hubs (tests/conftest.py)"
    )


@pytest.hookimpl(tryfirst=True)  # before -m reads the marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        if in_engine_group(item):
            item.add_marker(pytest.mark.engine)
            item.add_marker(getattr(pytest.mark, lane_of(item)))
