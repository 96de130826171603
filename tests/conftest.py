"""Suite-wide fixtures, as plugins: the offline conda channels (built once, cached by their
inputs) and the real Docker engine and registry (``tests/support/engine.py``).

Every test that touches the one Docker engine, the session registry on 127.0.0.1:5000,
host iptables or a real hub is marked ``engine`` here, so ``scripts/test.sh`` can run those
one at a time in one pytest process (``-m engine``) while the pure tests (renderers,
kmock, helm, locks, parsers) run beside them in a second (``-m "not engine"``).
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


def in_engine_group(item) -> bool:
    """Whether ``item`` uses the shared engine, registry or host network state."""
    path = str(item.fspath).replace("\\", "/")
    if any(folder in path for folder in ENGINE_DIRS):
        return True
    if ENGINE_MARKS & {mark.name for mark in item.iter_markers()}:
        return True
    return bool(ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())))


@pytest.hookimpl(tryfirst=True)  # before -m reads the marks
def pytest_collection_modifyitems(config, items):
    for item in items:
        if in_engine_group(item):
            item.add_marker(pytest.mark.engine)
