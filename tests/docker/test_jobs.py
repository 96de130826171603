"""``lockstep run`` for real: a job runs in the stage's image by digest, hardened like a
server, streams its output, returns its exit code, is logged, and leaves no container."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spawner.sessions import FILENAME, read_events, read_sessions  # noqa: E402
from tests.docker.lockstep_site import REPO, ForecastSite, notebook_code

pytestmark = [pytest.mark.docker, pytest.mark.registry]

PROBE = r"""
import json, os
def can_write(path):
    try:
        with open(os.path.join(path, '.probe'), 'w') as fh: fh.write('x')
        os.unlink(os.path.join(path, '.probe')); return True
    except OSError: return False
status = dict(line.split(':\t', 1) for line in open('/proc/self/status').read().splitlines()
              if ':\t' in line)
print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'cwd': os.getcwd(),
                  'root_writable': can_write('/'), 'data_writable': can_write('/data/sales'),
                  'workspace_writable': can_write('/workspace'),
                  'cap_eff': status['CapEff'].strip(),
                  'no_new_privs': status['NoNewPrivs'].strip(),
                  'image': os.environ['LOCKSTEP_IMAGE'],
                  'sales': os.path.exists('/data/sales/sales.csv')}))
"""


@pytest.fixture(scope="module")
def site(locked_project, built_image, registry, docker_client, tmp_path_factory):
    root = tmp_path_factory.mktemp("jobs-envs")
    lock = locked_project("forecast", ["python=3.11", "numpy"],
                          root=tmp_path_factory.mktemp("jobs-lock")) / "conda-lock.yml"
    build = built_image(lock.parent)
    site = ForecastSite(root=root, lock=lock, build=build, registry=registry,
                        tmp=tmp_path_factory.mktemp("jobs-site"))
    site.push_build()
    site.to_prod()
    yield site
    site.cleanup(docker_client)


def job_records(site) -> list[dict]:
    return [e for e in read_events(site.settings.data_path(FILENAME)) if e.get("kind") == "job"]


def test_output_and_exit_code_come_back(site, capfd, docker_client):
    code = site.lockstep("run", site.name, "--stage", "prod", "--", "python", "-c",
                         "import sys; print('forecast says hi'); "
                         "print('to stderr', file=sys.stderr); sys.exit(3)")
    out, err = capfd.readouterr()
    assert code == 3
    assert "forecast says hi" in out and "to stderr" in err
    assert "exited with code 3" in err and "' exited with code 3;" not in err
    starts = [e for e in job_records(site) if e["event"] == "start"]
    stops = [e for e in job_records(site) if e["event"] == "stop"]
    assert starts[-1]["digest"] == site.digest("prod")
    assert starts[-1]["command"][:2] == ["python", "-c"]
    assert stops[-1]["id"] == starts[-1]["id"] and stops[-1]["exit_code"] == 3
    assert site.containers(docker_client) == []


def test_a_job_is_hardened_like_a_server(site, capfd):
    began = time.monotonic()
    assert site.lockstep("run", site.name, "--stage", "prod", "--", "true") == 0
    took = time.monotonic() - began
    with capfd.disabled():
        print(f"\na `true` job, end to end (CLI in-process, warm image): {took:.2f}s")
    assert site.lockstep("run", site.name, "--stage", "prod", "--", "python", "-c", PROBE) == 0
    probe = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    assert probe == {
        "uid": 1000, "gid": 100, "cwd": "/workspace", "root_writable": False,
        "data_writable": False, "workspace_writable": True, "cap_eff": "0000000000000000",
        "no_new_privs": "1", "image": probe["image"], "sales": True,
    }
    assert probe["image"].endswith("@" + site.digest("prod"))


def test_the_training_notebook_saves_the_model_to_the_workspace(site, capfd):
    code = notebook_code(REPO / "notebooks" / "forecast" / "train.ipynb")
    assert site.lockstep("run", site.name, "--stage", "prod", "--", "python", "-c", code) == 0
    assert "model.json" in capfd.readouterr().out
    assert site.lockstep("run", site.name, "--stage", "prod", "--", "python", "-c",
                         "import json; m = json.load(open('/workspace/model.json')); "
                         "print(sorted(m), m['slope'] > 0)") == 0
    assert "['intercept', 'slope'] True" in capfd.readouterr().out


def test_a_recorded_session_reruns_on_its_identical_digest(site, capfd):
    assert site.lockstep("run", site.name, "--stage", "prod", "--", "python", "-c",
                         "import os; print(os.environ['LOCKSTEP_IMAGE'])") == 0
    first = [s for s in read_sessions(site.settings.data_path(FILENAME), project=site.name)][-1]
    capfd.readouterr()
    # prod moves on to another digest; the session still names the old one
    new = site.push_variant("rerun")
    site.to_prod()
    assert site.digest("prod") == new != first.digest
    assert site.lockstep("run", "--session", first.id, "--", "python", "-c",
                         "import os; print(os.environ['LOCKSTEP_IMAGE'])") == 0
    assert capfd.readouterr().out.strip().endswith("@" + first.digest)
    rerun = job_records(site)[-2]
    assert rerun["event"] == "start" and rerun["digest"] == first.digest
    assert rerun["rerun_of"] == first.id
    assert site.lockstep("run", site.name, "--digest", first.digest, "--", "true") == 0


def test_a_command_that_cannot_start_is_named_and_leaves_nothing(site, capfd, docker_client):
    code = site.lockstep("run", site.name, "--stage", "prod", "--", "no-such-program", "x")
    err = capfd.readouterr().err
    assert code == 127  # as a shell says it: command not found
    assert "the command 'no-such-program x' exited with code 127; it was not found in the " \
           "image" in err
    assert site.containers(docker_client) == []


def test_unknown_stage_and_empty_stage_are_explained(site, capfd, docker_client):
    assert site.lockstep("run", site.name, "--stage", "prdo", "--", "true") == 2
    assert "unknown stage 'prdo'; this site's stages are dev, qa, prod" in capfd.readouterr().err
    other = ForecastSite(root=Path(site.settings.environments_dir), lock=Path(
        site.settings.environments_dir) / site.name / "conda-lock.yml", build=site.build,
        registry=site.host, tmp=site.tmp, name=site.name + "-x")
    other.config = site.config
    assert site.lockstep("run", other.name, "--stage", "qa", "--", "true") == 2
    err = capfd.readouterr().err
    assert f"stage 'qa' of project '{other.name}' has no image yet" in err
    assert f"lockstep promote {other.name} --to qa" in err
    assert site.lockstep("run", "--session", "nope", "--", "true") == 2
    assert "no session 'nope'" in capfd.readouterr().err
    assert site.containers(docker_client) == [] and other.containers(docker_client) == []


def _default_sigint() -> None:
    """Ctrl-C as a person's shell leaves it: pytest may run as a background job
    (``scripts/test.sh`` runs the engine lanes at once), whose children inherit SIGINT
    ignored, and then Python installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_job_leaves_no_container(site, docker_client, signum, capfd):
    proc = subprocess.Popen(
        [sys.executable, "-m", "spawner.cli", "--config", site.config_file(), "run", site.name,
         "--stage", "prod", "--", "python", "-c",
         "import time; print('started', flush=True); time.sleep(120)"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_sigint)
    try:
        assert proc.stdout.readline().strip() == "started"
        assert len(site.containers(docker_client, **{"org.lockstep.kind": "job"})) == 1
        assert site.lockstep("audit", "--json", "--project", site.name) == 0  # CIS section 5
        report = json.loads(capfd.readouterr().out)
        assert [c["kind"] for c in report["containers"]] == ["job"] and report["failed"] == 0
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted; container lockstep-job_" in err
    assert site.containers(docker_client) == []
