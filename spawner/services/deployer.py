"""Model services on Docker: start, roll to a new digest, and remove, by label.

``deploy`` makes the engine run the service of one project on exactly one digest (the one
the caller resolved from the stage), replica by replica:

1. a replica already on that digest and healthy is left alone (deploy is idempotent);
2. otherwise a *candidate* of the new digest starts unpublished (``..._<i>_next``) and must
   pass its Docker health check; if it does not, it is removed and the running replica
   is kept (``ServiceError`` with the candidate's log tail): a bad digest never takes over;
3. the old replica is stopped, the new one is created with the published port and must
   be healthy again; if it is not, it is removed and the old one is started again;
4. the old replica is removed and the new one renamed ``lockstep-svc_<project>_<i>``.

A container found under a replica's name (or under its name before 0.2,
``lockstep-svc-<project>-<i>``, which a replica of an earlier release still has and which
a roll then replaces) is treated as the replica only when its labels say it is one
(``org.lockstep.managed``, ``kind=service``, this ``project``); any other container of that
name is refused by name and never stopped or removed.

A port clash (another lockstep service or any container publishing the port, or a host
program listening on it) is refused before anything is created. On any failure nothing
new is left behind: every container this call created is removed.

The builders live in ``spawner.services.spec`` (pure); this module only talks to the engine,
and only through ``spawner.docker.engine`` (the caller has made the engine ready with
``spawner.docker.prepare``, as for a server).
"""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from spawner.docker import engine as dockerops
from spawner.docker.engine import EngineError
from spawner.labels import DIGEST as DIGEST_LABEL
from spawner.labels import HEALTH as HEALTH_LABEL
from spawner.labels import KIND as KIND_LABEL
from spawner.labels import MANAGED as MANAGED_LABEL
from spawner.labels import MODEL_DIGEST as MODEL_LABEL
from spawner.labels import PROJECT as PROJECT_LABEL
from spawner.labels import SERVICE_PORT as PORT_LABEL
from spawner.labels import selector
from spawner.project import Service
from spawner.services.spec import (
    Binding,
    ServiceError,
    container_name,
    host_ports,
)

BodyFor = Callable[[int, bool], dict]  # (replica index, publish) -> create body


@dataclass
class ReplicaResult:
    name: str
    action: str  # started | rolled | unchanged
    digest: str
    previous: str = ""
    host_port: int = 0
    candidate_healthy_s: float = 0.0
    switch_s: float = 0.0  # port unserved: old stopped -> new healthy


@dataclass
class DeployResult:
    project: str
    digest: str
    replicas: list[ReplicaResult] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def service_containers(api, project: str | None = None) -> list[dict]:
    """Every lockstep service container (of ``project``), running or not."""
    labels = [selector(KIND_LABEL, "service"), dockerops.MANAGED]
    if project:
        labels.append(selector(PROJECT_LABEL, project))
    return dockerops.containers(api, labels=labels)


def legacy_name(project: str, index: int) -> str:
    """A replica's name before 0.2 (``lockstep-svc-<project>-<i>``), adopted by a roll."""
    return f"lockstep-svc-{project}-{index}"


def current_replica(api, project: str, index: int) -> dict | None:
    """The running replica ``index`` of ``project`` (by its name, else its legacy name), or
    None; ServiceError when a container holds the name but is no replica of ``project``."""
    for name in (container_name(project, index), legacy_name(project, index)):
        found = dockerops.inspect_container(api, name)
        if found is None:
            continue
        labels = (found.get("Config") or {}).get("Labels") or {}
        if labels.get(KIND_LABEL) == "service" and labels.get(PROJECT_LABEL) == project \
                and labels.get(MANAGED_LABEL) == "true":
            return found
        if name == container_name(project, index):
            raise ServiceError(
                f"a container named {name} exists but is not a service replica of "
                f"{project!r} (labels kind={labels.get(KIND_LABEL)!r}, "
                f"project={labels.get(PROJECT_LABEL)!r}); lockstep never stops or removes "
                "a container it did not start for this service. Check what it is, then "
                f"remove or rename it (docker rename {name} NEW) and deploy again.")
    return None


def _port_free(host_ip: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host_ip, port))
        except OSError:
            return False
    return True


def check_ports(api, *, project: str, service: Service, binding: Binding) -> None:
    """Refuse host ports another service, container or program already holds."""
    wanted = set(host_ports(service, binding))
    ours: set[int] = set()
    for container in dockerops.containers(api, stopped=False):
        labels = container.get("Labels") or {}
        mine = labels.get(KIND_LABEL) == "service" and labels.get(PROJECT_LABEL) == project
        published = {int(p["PublicPort"]) for p in container.get("Ports") or ()
                     if p.get("PublicPort")}
        if labels.get(KIND_LABEL) == "service" and labels.get(PORT_LABEL, "").isdigit():
            published.add(int(labels[PORT_LABEL]))
        clash = sorted(published & wanted)
        if mine:
            ours |= published
            continue
        if clash:
            who = (f"service {labels[PROJECT_LABEL]!r}" if labels.get(KIND_LABEL) == "service"
                   else "container")
            name = (container.get("Names") or ["?"])[0].lstrip("/")
            raise ServiceError(
                f"port {clash[0]} is already used by {who} (container {name}); "
                f"project {project!r} cannot publish its service there. Pick another host "
                f"port with `lockstep deploy {project} --port PORT`, or stop {name}."
            )
    for port in sorted(wanted - ours):
        if not _port_free(binding.host_ip, port):
            raise ServiceError(
                f"port {port} on {binding.host_ip} is in use by another program on this host; "
                f"project {project!r} cannot publish its service there. Free it (`ss -ltnp "
                f"'sport = :{port}'` shows who holds it) or pick another host port with "
                f"`lockstep deploy {project} --port PORT`."
            )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:
            return 200 <= response.status < 300
    except (OSError, ValueError):
        return False


def wait_healthy(api, container_id: str, *, timeout_s: float, health: str = "",
                 port: int = 0) -> tuple[bool, str]:
    """Wait until the container is healthy; ``(False, why)`` when it will not be.

    Healthy is Docker's verdict, or, sooner, the health path answering 2xx at the
    container's address (Docker's first check only runs one interval after the start).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        info = dockerops.inspect_container(api, container_id)
        if info is None:
            return False, "it was removed while starting"
        state = info["State"]
        health_status = (state.get("Health") or {}).get("Status", "")
        if health_status == "healthy":
            return True, ""
        addresses = [n.get("IPAddress") for n in
                     ((info.get("NetworkSettings") or {}).get("Networks") or {}).values()]
        if health and port and state.get("Running") and any(
                _answers(f"http://{ip}:{port}{health}") for ip in addresses if ip):
            return True, ""
        if state.get("Status") in ("exited", "dead") or state.get("Restarting"):
            return False, f"it exited with code {state.get('ExitCode')}"
        if health_status == "unhealthy":
            return False, "its health check failed"
        if time.monotonic() > deadline:
            return False, f"it was not healthy after {timeout_s:.0f}s"
        time.sleep(0.2)


def _start(api, body: dict, name: str) -> str:
    dockerops.remove_container(api, name)
    created = dockerops.create_container(api, body, name)
    try:
        dockerops.start_container(api, created)
    except EngineError as exc:
        dockerops.remove_container(api, created)
        text = exc.detail
        if "address already in use" in text or "port is already allocated" in text:
            raise ServiceError(f"cannot publish the service port: {text}. Pick another host "
                               "port with --port, or free it.") from None
        raise ServiceError(f"the engine could not start {name}: {text}") from None
    return created


def _tried(api, body: dict, name: str, timeout_s: float) -> tuple[str, bool, str, float]:
    began = time.monotonic()
    cid = _start(api, body, name)
    port = int(next(iter(body.get("ExposedPorts") or {"0/tcp": {}})).split("/")[0])
    ok, why = wait_healthy(api, cid, timeout_s=timeout_s, port=port,
                           health=body.get("Labels", {}).get(HEALTH_LABEL, ""))
    logs = "" if ok else dockerops.container_logs(api, cid, tail=15).strip()
    return cid, ok, (f"{why}; last log lines:\n{logs}" if logs else why), time.monotonic() - began


def _roll_replica(api, *, project: str, index: int, digest: str, body_for: BodyFor,
                  port: int, timeout_s: float, report: Callable[[str], None],
                  model: str = "") -> ReplicaResult:
    name = container_name(project, index)
    temp = container_name(project, index, suffix="next")
    current = current_replica(api, project, index)
    labels = ((current or {}).get("Config") or {}).get("Labels") or {}
    previous = labels.get(DIGEST_LABEL, "")
    result = ReplicaResult(name, "started" if current is None else "rolled", digest,
                           previous, port)
    state = (current or {}).get("State") or {}
    if previous == digest and labels.get(MODEL_LABEL, "") == model and state.get("Running") and \
            (state.get("Health") or {}).get("Status") == "healthy":
        result.action = "unchanged"
        return result
    if current is not None:  # prove the new digest healthy before touching the old one
        report(f"{temp}: checking {digest[:19]} before it replaces {previous[:19]}")
        cid, ok, why, took = _tried(api, body_for(index, False), temp, timeout_s)
        dockerops.remove_container(api, cid)
        if not ok:
            raise ServiceError(
                f"the new image {digest} of {project!r} failed its health check ({why}); "
                f"the running service ({previous or 'unlabelled'}) was kept as it was."
            )
        result.candidate_healthy_s = took
        dockerops.stop_container(api, current["Id"], timeout=10)
    switch = time.monotonic()
    cid, ok, why, took = "", False, "", 0.0
    try:
        cid, ok, why, took = _tried(api, body_for(index, True), temp, timeout_s)
    finally:
        if not ok:
            if cid:
                dockerops.remove_container(api, cid)
            if current is not None:
                dockerops.start_container(api, current["Id"])
    if not ok:
        kept = (f"the running service ({previous}) was started again" if current is not None
                else "nothing was left running")
        raise ServiceError(f"service {project!r} on {digest} did not become healthy "
                           f"({why}); {kept}.")
    result.switch_s = time.monotonic() - switch if current is not None else took
    if current is not None:
        dockerops.remove_container(api, current["Id"])
    dockerops.rename_container(api, cid, name)
    return result


def deploy(
    api,
    *,
    project: str,
    digest: str,
    service: Service,
    binding: Binding,
    body_for: BodyFor,
    timeout_s: float = 60.0,
    report: Callable[[str], None] = lambda message: None,
    model: str = "",
) -> DeployResult:
    """Run ``project``'s service on ``digest`` (see module docstring) with ``model`` (its
    digest, '' for none: a replica serving another model is rolled like another image)."""
    check_ports(api, project=project, service=service, binding=binding)
    result = DeployResult(project, digest)
    ports = host_ports(service, binding)
    fresh = not any(c["State"] == "running" for c in service_containers(api, project))
    try:
        for index in range(service.replicas):
            result.replicas.append(_roll_replica(
                api, project=project, index=index, digest=digest, body_for=body_for,
                port=ports[index], timeout_s=timeout_s, report=report, model=model))
    except BaseException:
        if fresh:  # a first deploy that failed part-way leaves nothing running
            remove(api, project)
        raise
    keep = {container_name(project, i) for i in range(service.replicas)}
    for container in service_containers(api, project):
        name = (container.get("Names") or [""])[0].lstrip("/")
        if name not in keep:
            dockerops.remove_container(api, container["Id"])
            result.removed.append(name)
    return result


def remove(api, project: str) -> list[str]:
    """Remove every service container of ``project``; their names."""
    names = []
    for container in service_containers(api, project):
        dockerops.remove_container(api, container["Id"])
        names.append((container.get("Names") or [""])[0].lstrip("/"))
    return sorted(names)


def status(api, project: str) -> list[dict[str, Any]]:
    """Name, digest, state, health and published port of each service container."""
    rows = []
    for container in service_containers(api, project):
        info = dockerops.inspect_container(api, container["Id"])
        if info is None:  # removed since it was listed
            continue
        labels = info["Config"].get("Labels") or {}
        rows.append({
            "name": info["Name"].lstrip("/"),
            "digest": labels.get(DIGEST_LABEL, ""),
            "state": info["State"]["Status"],
            "health": (info["State"].get("Health") or {}).get("Status", ""),
            "port": labels.get(PORT_LABEL, ""),
        })
    return sorted(rows, key=lambda r: r["name"])
