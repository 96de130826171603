"""``spawner.docker.cis``, pure: CIS section 5 checks over ``docker inspect`` dicts.

A hardened inspect dict (the shape Docker 20.10 returns for a lockstep server) passes every
check; each case below changes one thing and must fail exactly the checks it names, and
together the cases fail every check in ``CHECKS``. The renderers' own bodies (server, job,
service) must pass too.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from spawner.commands.audit import print_table
from spawner.docker import cis as audit
from spawner.docker.cis import CHECKS, EXCEPTION, FAIL, NA, PASS, HostFacts
from spawner.docker.jobs import job_body, job_spec
from spawner.docker.render import render_container
from spawner.launch.spec import ImageRef, build_launch_spec
from spawner.project import load_project
from spawner.services.spec import docker_body, service_launch_spec

ROOT = Path(__file__).resolve().parents[3]
DIGEST = "sha256:" + "ab" * 32
IMAGE = ImageRef(f"127.0.0.1:5000/lockstep/forecast@{DIGEST}", lock_hash="sha256:" + "f" * 64)
FORECAST = load_project(ROOT / "environments" / "forecast")
SOURCES = {"sales": "/srv/data/sales"}
NO_APPARMOR = HostFacts(apparmor=False, seccomp=True, userns=True)
APPARMOR = HostFacts(apparmor=True, seccomp=True, userns=True)
PLAIN = HostFacts(apparmor=True, seccomp=True)  # no userns-remap: Docker's default
REPORT_ONLY = {"2.8 userns-remap", "- volume-size"}  # n/a where the engine cannot

GOOD = {
    "Id": "0123456789abcdef" * 4,
    "Name": "/lockstep-alice",
    "AppArmorProfile": "docker-default",
    "Config": {"Image": f"127.0.0.1:5000/lockstep/forecast@{DIGEST}",
               "Labels": {"org.lockstep.managed": "true", "org.lockstep.project": "forecast"}},
    "HostConfig": {
        "CapAdd": None, "CapDrop": ["ALL"], "Privileged": False,
        "SecurityOpt": ["no-new-privileges:true"], "ReadonlyRootfs": True,
        "Memory": 2_000_000_000, "NanoCpus": 2_000_000_000, "CpuShares": 0, "CpuQuota": 0,
        "PidsLimit": 1024, "NetworkMode": "lockstep-forecast", "IpcMode": "private",
        "PidMode": "", "UTSMode": "", "UsernsMode": "", "PortBindings": None,
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
    },
    "Mounts": [
        {"Type": "bind", "Source": "/srv/data/sales", "Destination": "/data/sales", "RW": False,
         "Mode": "", "Propagation": "rprivate"},
        {"Type": "volume", "Name": "lockstep-ws-forecast", "Source":
         "/var/lib/docker/volumes/lockstep-ws-forecast/_data", "Destination": "/workspace",
         "RW": True, "Driver": "pxd"},  # a volume driver that enforces sizes
        {"Type": "tmpfs", "Source": "", "Destination": "/tmp", "RW": True},
    ],
    "NetworkSettings": {"Ports": {"8888/tcp": None}},
}


def failed(info, host=NO_APPARMOR) -> set[str]:
    return {f"{r.cis} {r.check}" for r in audit.audit_container(info, host=host)
            if r.status == FAIL}


def changed(**host_config) -> dict:
    info = copy.deepcopy(GOOD)
    info["HostConfig"].update(host_config)
    return info


def with_bind(source: str, target: str = "/mnt/x", rw: bool = False) -> dict:
    info = copy.deepcopy(GOOD)
    info["Mounts"].append({"Type": "bind", "Source": source, "Destination": target, "RW": rw})
    return info


def test_the_hardened_container_passes_every_check():
    results = audit.audit_container(GOOD, host=APPARMOR)
    assert [(r.cis, r.check) for r in results] == [(c.cis, c.name) for c in CHECKS]
    assert {r.status for r in results} == {PASS}, [r for r in results if r.status != PASS]
    assert {(r.container, r.id, r.project, r.kind) for r in results} == {
        ("lockstep-alice", "0123456789ab", "forecast", "server")}


def test_apparmor_is_not_applicable_on_a_host_without_it():
    results = {r.check: r for r in audit.audit_container(GOOD, host=NO_APPARMOR)}
    assert results["apparmor"].status == NA
    assert "no name=apparmor" in results["apparmor"].detail
    assert {r.status for name, r in results.items() if name != "apparmor"} == {PASS}


def _apparmor_off():
    info = copy.deepcopy(GOOD)
    info["AppArmorProfile"] = "unconfined"
    return info


def _apparmor_opt():
    return changed(SecurityOpt=["no-new-privileges:true", "apparmor=unconfined"])


def _port(port: str, where: str = "PortBindings"):
    info = copy.deepcopy(GOOD)
    table = {"8888/tcp": [{"HostIp": "127.0.0.1", "HostPort": port}]}
    if where == "PortBindings":
        info["HostConfig"]["PortBindings"] = table
    else:
        info["NetworkSettings"]["Ports"] = table
    return info


def _restart(name: str, count: int = 0, kind: str = ""):
    info = changed(RestartPolicy={"Name": name, "MaximumRetryCount": count})
    if kind:
        info["Config"]["Labels"]["org.lockstep.kind"] = kind
    return info


# (case id, inspect dict, host, the exact set of failing checks)
FAILING = [
    ("apparmor-profile-unconfined", _apparmor_off(), APPARMOR, {"5.1 apparmor"}),
    ("apparmor-security-opt", _apparmor_opt(), APPARMOR, {"5.1 apparmor"}),
    ("cap-add", changed(CapAdd=["NET_ADMIN"]), NO_APPARMOR, {"5.3 capabilities"}),
    ("log-unbounded", changed(LogConfig={"Type": "json-file", "Config": {}}), NO_APPARMOR,
     {"- log-limits"}),
    ("cap-drop-missing", changed(CapDrop=None), NO_APPARMOR, {"5.3 capabilities"}),
    ("cap-drop-some", changed(CapDrop=["NET_RAW"]), NO_APPARMOR, {"5.3 capabilities"}),
    ("privileged", changed(Privileged=True), APPARMOR,
     {"5.1 apparmor", "5.3 capabilities", "5.4 privileged", "5.21 seccomp"}),
    ("bind-root", with_bind("/"), NO_APPARMOR, {"5.5 host-paths", "5.31 docker-socket"}),
    ("bind-etc", with_bind("/etc"), NO_APPARMOR, {"5.5 host-paths"}),
    ("bind-etc-file", with_bind("/etc/passwd"), NO_APPARMOR, {"5.5 host-paths"}),
    ("bind-usr-lib", with_bind("/usr/lib/"), NO_APPARMOR, {"5.5 host-paths"}),
    ("bind-proc-dotted", with_bind("/srv/../proc"), NO_APPARMOR, {"5.5 host-paths"}),
    ("bind-dev", with_bind("/dev"), NO_APPARMOR, {"5.5 host-paths"}),
    ("bind-boot", with_bind("/boot"), NO_APPARMOR, {"5.5 host-paths"}),
    ("bind-sys", with_bind("/sys/fs/cgroup"), NO_APPARMOR, {"5.5 host-paths"}),
    ("bind-lib", with_bind("/lib"), NO_APPARMOR, {"5.5 host-paths"}),
    ("data-writable", with_bind("/srv/data/other", rw=True), NO_APPARMOR,
     {"5.5 data-read-only"}),
    ("port-80", _port("80"), NO_APPARMOR, {"5.7 privileged-ports"}),
    ("port-range-443", _port("443-450"), NO_APPARMOR, {"5.7 privileged-ports"}),
    ("port-actual-22", _port("22", where="NetworkSettings"), NO_APPARMOR,
     {"5.7 privileged-ports"}),
    ("host-network", changed(NetworkMode="host"), NO_APPARMOR, {"5.9 host-network"}),
    ("no-memory", changed(Memory=0), NO_APPARMOR, {"5.10 memory"}),
    ("no-cpu", changed(NanoCpus=0), NO_APPARMOR, {"5.11 cpu"}),
    ("default-cpu-shares", changed(NanoCpus=0, CpuShares=1024), NO_APPARMOR, {"5.11 cpu"}),
    ("writable-root", changed(ReadonlyRootfs=False), NO_APPARMOR, {"5.12 read-only-root"}),
    ("restart-always", _restart("always"), NO_APPARMOR, {"5.14 restart-policy"}),
    ("restart-unless-stopped", _restart("unless-stopped"), NO_APPARMOR,
     {"5.14 restart-policy"}),
    ("restart-on-failure-unlimited", _restart("on-failure", 0), NO_APPARMOR,
     {"5.14 restart-policy"}),
    ("restart-on-failure-6", _restart("on-failure", 6), NO_APPARMOR, {"5.14 restart-policy"}),
    ("service-restart-always", _restart("always", kind="service"), NO_APPARMOR,
     {"5.14 restart-policy"}),
    ("job-unless-stopped", _restart("unless-stopped", kind="job"), NO_APPARMOR,
     {"5.14 restart-policy"}),
    ("host-pid", changed(PidMode="host"), NO_APPARMOR, {"5.15 host-pid"}),
    ("host-ipc", changed(IpcMode="host"), NO_APPARMOR, {"5.16 host-ipc"}),
    ("host-uts", changed(UTSMode="host"), NO_APPARMOR, {"5.20 host-uts"}),
    ("seccomp-unconfined", changed(SecurityOpt=["no-new-privileges:true",
                                                "seccomp=unconfined"]), NO_APPARMOR,
     {"5.21 seccomp"}),
    ("seccomp-unconfined-colon", changed(SecurityOpt=["no-new-privileges",
                                                      "seccomp:unconfined"]), NO_APPARMOR,
     {"5.21 seccomp"}),
    ("engine-without-seccomp", copy.deepcopy(GOOD), HostFacts(seccomp=False),
     {"5.21 seccomp"}),
    ("no-new-privileges-missing", changed(SecurityOpt=None), NO_APPARMOR,
     {"5.25 no-new-privileges"}),
    ("no-new-privileges-false", changed(SecurityOpt=["no-new-privileges:false"]), NO_APPARMOR,
     {"5.25 no-new-privileges"}),
    ("pids-unlimited", changed(PidsLimit=-1), NO_APPARMOR, {"5.28 pids-limit"}),
    ("pids-none", changed(PidsLimit=None), NO_APPARMOR, {"5.28 pids-limit"}),
    ("host-userns", changed(UsernsMode="host"), NO_APPARMOR, {"5.30 host-userns"}),
    ("docker-sock", with_bind("/var/run/docker.sock", "/var/run/docker.sock"), NO_APPARMOR,
     {"5.31 docker-socket"}),
    ("containerd-sock", with_bind("/run/containerd/containerd.sock"), NO_APPARMOR,
     {"5.31 docker-socket"}),
    ("rootless-sock-anywhere", with_bind("/home/u/.docker/run/docker.sock"), NO_APPARMOR,
     {"5.31 docker-socket"}),
    ("sock-renamed-inside", with_bind("/srv/engine.sock", "/tmp/docker.sock"), NO_APPARMOR,
     {"5.31 docker-socket"}),
    ("run-folder", with_bind("/run"), NO_APPARMOR, {"5.31 docker-socket"}),
    ("var-run-folder", with_bind("/var/run/"), NO_APPARMOR, {"5.31 docker-socket"}),
]


@pytest.mark.parametrize(("info", "host", "expected"), [c[1:] for c in FAILING],
                         ids=[c[0] for c in FAILING])
def test_one_change_fails_exactly_the_checks_it_should(info, host, expected):
    assert failed(info, host) == expected


def test_every_check_is_shown_able_to_fail():
    shown = set().union(*(expected for *_, expected in FAILING))
    assert shown == {f"{c.cis} {c.name}" for c in CHECKS} - REPORT_ONLY


def test_what_the_engine_cannot_do_is_reported_not_hidden():
    local = copy.deepcopy(GOOD)
    del local["Mounts"][1]["Driver"]  # Docker's local driver
    results = {r.check: r for r in audit.audit_container(local, host=PLAIN)}
    assert (results["userns-remap"].cis, results["userns-remap"].status) == ("2.8", NA)
    assert "without userns-remap" in results["userns-remap"].detail
    assert results["volume-size"].status == NA
    assert "lockstep-ws-forecast" in results["volume-size"].detail
    assert "workspace.size is not enforced" in results["volume-size"].detail
    assert {r.status for n, r in results.items()
            if n not in ("userns-remap", "volume-size")} == {PASS}
    assert not audit.failures(results.values())  # reported, not failed


@pytest.mark.parametrize("info", [
    with_bind("/etcetera"), with_bind("/usrdata"), with_bind("/srv/data/lib"),
    with_bind("/runner/cache"), with_bind("/var/lib/data"),
    _restart("on-failure", 5), _restart("on-failure", 1), _restart(""),
    changed(NanoCpus=0, CpuQuota=50_000), changed(NanoCpus=0, CpuShares=512),
    changed(NetworkMode="container:abc"), changed(IpcMode="shareable"),
    _port(""), _port("0"), _port("1024"), _port("49153", where="NetworkSettings"),
], ids=["etcetera", "usrdata", "data-lib", "runner", "var-lib", "on-failure-5", "on-failure-1",
        "restart-empty", "cpu-quota", "cpu-shares-512", "net-container", "ipc-shareable",
        "port-random", "port-zero", "port-1024", "port-high"])
def test_near_misses_pass(info):
    assert failed(info, APPARMOR) == set()


def test_a_model_service_restart_policy_is_a_stated_exception_not_a_pass():
    results = {r.check: r for r in audit.audit_container(
        _restart("unless-stopped", kind="service"), host=NO_APPARMOR)}
    assert results["restart-policy"].status == EXCEPTION
    assert "model service" in results["restart-policy"].detail
    assert results["restart-policy"].kind == "service"
    assert audit.failures(results.values()) == []


def test_failure_details_name_what_is_wrong():
    details = {r.check: r.detail for r in audit.audit_container(
        with_bind("/var/run/docker.sock", "/sock", rw=True), host=NO_APPARMOR)}
    assert details["docker-socket"] == "engine socket reachable: /var/run/docker.sock -> /sock"
    assert "/var/run/docker.sock -> /sock" in details["data-read-only"]
    cap = {r.check: r.detail for r in audit.audit_container(
        changed(CapAdd=["cap_sys_admin", "NET_RAW"], CapDrop=[]), host=NO_APPARMOR)}
    assert cap["capabilities"] == "adds NET_RAW, SYS_ADMIN; does not drop ALL (--cap-drop ALL)"
    restart = {r.check: r.detail for r in audit.audit_container(
        _restart("on-failure", 0), host=NO_APPARMOR)}
    assert restart["restart-policy"] == ("restart policy on-failure:unlimited; use "
                                         "on-failure:5 or no")


def test_host_facts_come_from_docker_info_security_options():
    assert audit.host_facts({"SecurityOptions": ["name=apparmor", "name=seccomp,profile=default",
                                                 "name=cgroupns"]}) == PLAIN
    assert audit.host_facts({"SecurityOptions": ["name=apparmor", "name=seccomp,profile=default",
                                                 "name=userns"]}) == APPARMOR
    assert audit.host_facts({"SecurityOptions": ["name=seccomp,profile=default",
                                                 "name=userns"]}) == NO_APPARMOR
    assert audit.host_facts({}) == HostFacts(apparmor=False, seccomp=False)


def test_audit_sorts_by_container_and_does_not_touch_its_input():
    other = copy.deepcopy(GOOD)
    other["Name"], other["Id"] = "/lockstep-aaron", "f" * 64
    before = copy.deepcopy([GOOD, other])
    results = audit.audit([GOOD, other], host=NO_APPARMOR)
    assert [GOOD, other] == before
    assert [r.container for r in results] == (["lockstep-aaron"] * len(CHECKS)
                                              + ["lockstep-alice"] * len(CHECKS))


# -- what lockstep renders passes ----------------------------------------------------------

def as_inspect(body: dict, name: str) -> dict:
    """What ``docker inspect`` shows for a container created from ``body`` (the keys the
    audit reads): the host config as sent, the mounts as the engine lists them."""
    mounts = [{"Type": m["Type"], "Source": m.get("Source", ""), "Destination": m["Target"],
               "RW": not m.get("ReadOnly", False)} for m in body["HostConfig"]["Mounts"]]
    return {"Id": "c" * 64, "Name": f"/{name}", "AppArmorProfile": "docker-default",
            "Config": {"Labels": body["Labels"], "Image": body["Image"]},
            "HostConfig": body["HostConfig"], "Mounts": mounts, "NetworkSettings": {}}


def statuses(body: dict, name: str) -> dict[str, str]:
    """The statuses, less volume-size (a rendered body's volumes are Docker-local: n/a)."""
    found = {r.check: r.status for r in audit.audit_container(as_inspect(body, name),
                                                              host=APPARMOR)}
    assert found.pop("volume-size") in (NA, PASS)
    return found


def test_a_rendered_server_passes():
    spec = build_launch_spec(project=FORECAST, image=IMAGE, user="alice", stage="dev",
                             data_sources=SOURCES)
    assert set(statuses(render_container(spec), "lockstep-alice").values()) == {PASS}


def test_a_rendered_job_passes():
    spec = job_spec(project=FORECAST, image=IMAGE, user="alice", stage="prod",
                    data_sources=SOURCES, command=("true",))
    body = job_body(spec, project=FORECAST, session_id="abc", runtime="runsc")
    assert set(statuses(body, "lockstep-job_forecast_abc").values()) == {PASS}


def test_a_rendered_service_passes_with_its_restart_exception():
    spec = service_launch_spec(project=FORECAST, image=IMAGE, stage="prod",
                               data_sources=SOURCES)
    body = docker_body(spec, service=FORECAST.service, index=0)
    found = statuses(body, "lockstep-svc_forecast_0")
    assert found.pop("restart-policy") == EXCEPTION
    assert set(found.values()) == {PASS}


def test_the_table_shows_every_row_and_the_failures(capsys):
    bad = with_bind("/var/run/docker.sock")
    bad["Name"] = "/lockstep-bad"
    results = audit.audit([GOOD, bad], host=NO_APPARMOR)
    print_table(results, 2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["CONTAINER", "CIS", "CHECK", "STATUS", "DETAIL"]
    assert len([line for line in lines if line.startswith("lockstep-")]) == 2 * len(CHECKS)
    (row,) = [line for line in lines if " fail " in line]
    assert row.split()[:4] == ["lockstep-bad", "5.31", "docker-socket", "fail"]
    assert lines[-1] == f"2 container(s) x {len(CHECKS)} checks: 1 failed (in lockstep-bad)"
