"""``lockstep audit`` against the real engine: a container labelled lockstep-managed,
hardened in every way but one (the Docker socket is mounted, read-only, which protects
nothing), is named with exactly that check, and the audit exits 1.

The image is a static ``pause()`` binary compiled on the spot (no pull, no conda), as in
``test_engine_smoke.py``. The containers carry the suite's ``TEST_LABELS`` and a label unique
to this run, so the audit looks only at them and they are removed however the test ends.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import uuid

import pytest

from spawner import cli
from tests.support.engine import TEST_LABELS

pytestmark = pytest.mark.docker

SLEEPER = r"""
#include <unistd.h>
int main(void) { for (;;) pause(); return 0; }
"""
RUN = uuid.uuid4().hex[:8]
RUN_LABEL = "org.lockstep.audit-test"
SOCKET = "/var/run/docker.sock"


@pytest.fixture(scope="module")
def sleeper_image(docker_client, tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the static sleeper binary")
    tmp = tmp_path_factory.mktemp("sleeper")
    (tmp / "sleeper.c").write_text(SLEEPER)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(tmp / "sleeper"), str(tmp / "sleeper.c")],
                   check=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(tmp / "sleeper", arcname="sleeper")
    tag = f"lockstep-audit-sleeper:{RUN}"
    subprocess.run(["docker", "import", "-", tag], input=buf.getvalue(), capture_output=True,
                   check=True)
    yield tag
    docker_client.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def bad_containers(docker_client, sleeper_image):
    """(running, created): the running one hardened but for the socket; the created one
    (never started) privileged."""
    labels = {"org.lockstep.managed": "true", "org.lockstep.project": f"audit-{RUN}",
              **TEST_LABELS, RUN_LABEL: RUN}
    running = created = None
    try:
        running = docker_client.containers.run(
            sleeper_image, ["/sleeper"], detach=True, name=f"lockstep-audit-bad-{RUN}",
            labels=labels, user="1000:100", cap_drop=["ALL"], read_only=True,
            security_opt=["no-new-privileges:true"], mem_limit="64m", nano_cpus=250_000_000,
            pids_limit=16, network_mode="none", restart_policy={"Name": "no"},
            log_config={"Type": "json-file", "Config": {"max-size": "1m", "max-file": "2"}},
            volumes={SOCKET: {"bind": SOCKET, "mode": "ro"}})
        created = docker_client.containers.create(
            sleeper_image, ["/sleeper"], name=f"lockstep-audit-priv-{RUN}", labels=labels,
            privileged=True, network_mode="none")
        yield running, created
    finally:
        for container in (running, created):
            if container is not None:
                container.remove(force=True)


def audit(tmp_path, *args: str) -> int:
    config = tmp_path / "lockstep_config.py"
    config.write_text("")
    return cli.main(["--config", str(config), "audit", *args])


def test_the_socket_mount_is_named_and_the_audit_exits_1(bad_containers, tmp_path, capsys):
    running, created = bad_containers
    assert audit(tmp_path, "--json", "--label", f"{RUN_LABEL}={RUN}") == 1
    report = json.loads(capsys.readouterr().out)
    assert [c["name"] for c in report["containers"]] == [running.name]  # created: not running
    assert report["containers"][0]["state"] == "running"
    rows = report["results"]
    assert {r["container"] for r in rows} == {running.name}
    failed = [(r["cis"], r["check"], r["detail"]) for r in rows if r["status"] == "fail"]
    assert failed == [("5.31", "docker-socket",
                       f"engine socket reachable: {SOCKET} -> {SOCKET}")]
    assert report["failed"] == 1
    # everything else about it is hardened, and the engine's inspect says so
    assert {r["status"] for r in rows if r["check"] != "docker-socket"} <= {"pass", "n/a"}
    # issue 11's checks, with their CIS ids where the benchmark has one
    checks = {r["check"]: (r["cis"], r["status"]) for r in rows}
    assert checks["log-limits"] == ("-", "pass")
    assert checks["userns-remap"][0] == "2.8" and checks["volume-size"][0] == "-"

    assert audit(tmp_path, "--label", f"{RUN_LABEL}={RUN}") == 1
    lines = capsys.readouterr().out.splitlines()
    (row,) = [line for line in lines if " fail " in line]
    assert row.split()[:4] == [running.name, "5.31", "docker-socket", "fail"]
    assert lines[-1].endswith(f"1 failed (in {running.name})")


def test_all_adds_the_created_container_and_its_failures(bad_containers, tmp_path, capsys):
    running, created = bad_containers
    assert audit(tmp_path, "--json", "--all", "--label", f"{RUN_LABEL}={RUN}") == 1
    report = json.loads(capsys.readouterr().out)
    assert sorted(c["name"] for c in report["containers"]) == sorted([running.name,
                                                                       created.name])
    failed = {r["check"] for r in report["results"]
              if r["container"] == created.name and r["status"] == "fail"}
    assert {"privileged", "capabilities", "seccomp", "memory", "cpu", "pids-limit",
            "read-only-root", "no-new-privileges", "log-limits"} <= failed


def test_the_unfiltered_audit_includes_it_too(bad_containers, tmp_path, capsys):
    running, _ = bad_containers
    assert audit(tmp_path, "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert running.name in {c["name"] for c in report["containers"]}
    assert ("5.31", "fail") in {(r["cis"], r["status"]) for r in report["results"]
                                if r["container"] == running.name}


def test_a_filter_that_matches_nothing_passes_and_says_so(docker_client, tmp_path, capsys):
    assert audit(tmp_path, "--label", f"{RUN_LABEL}=nothing-{RUN}") == 0
    assert "no running lockstep containers to audit" in capsys.readouterr().out
