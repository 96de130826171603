"""A command whose extra is missing is listed and, when run, names the extra: no traceback."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from spawner import cli

ROOT = Path(__file__).resolve().parents[2]

# A fresh interpreter in which `import docker` fails, as in a `lockstep[kube]` install.
WITHOUT_DOCKER = """
import sys
class NoDocker:
    def find_spec(self, name, path=None, target=None):
        if name == "docker" or name.startswith("docker."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoDocker())
from spawner import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def _lockstep_without_docker(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_DOCKER, *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_missing_extra_names_the_install_line():
    done = _lockstep_without_docker("run", "forecast", "--stage", "dev", "--", "true")
    assert done.returncode == 2, done.stderr
    assert "lockstep[docker]" in done.stderr and "'docker'" in done.stderr
    assert "Traceback" not in done.stderr


def test_commands_without_the_extra_still_work():
    done = _lockstep_without_docker("--help")
    assert done.returncode == 0, done.stderr
    assert "run" in done.stdout and "lockstep[docker]" in done.stdout


def test_an_unknown_missing_module_is_not_hidden():
    sub = argparse.ArgumentParser().add_subparsers()
    exc = ModuleNotFoundError("No module named 'spawner.nope'", name="spawner.nope")
    with pytest.raises(ModuleNotFoundError) as raised:
        cli._missing_extra(sub, "x", exc)
    assert raised.value is exc
