"""The one module that talks to docker-py: clients, engine calls, and errors for people.

Everything in ``spawner/`` that needs the Docker Engine asks this module: ``connect``
makes every client the CLI and the gates use (the spawner's own client comes from
DockerSpawner); each other function takes a ``docker.APIClient`` and does one blocking,
idempotent job: make sure the project network exists (with its deterministic bridge name),
pull an image by digest (reporting progress), pull it only when missing, inspect, create,
start, wait for and remove containers, list lockstep's bridges, clean up by label.

Guarantees: no docker-py or requests exception leaves this module through ``translated``
or the helpers below; they become ``EngineError`` (a ``LockstepError``) whose message says
what the engine refused and what to do, keeping the engine's own text in ``detail``.
Nothing here decides policy (``spawner.docker.prepare`` and the pure builders do), and
nothing here must be imported by the Kubernetes side.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import docker
import requests
from docker.errors import APIError, DockerException, NotFound

from spawner.docker.firewall import (
    BRIDGE_OPTION,
    ICC_OPTION,
    bridge_name,
    gateway_of,
    network_create_kwargs,
)
from spawner.docker.pullprogress import pull_fraction, track_pull_event  # noqa: F401
from spawner.errors import LockstepError
from spawner.labels import MANAGED as MANAGED_LABEL
from spawner.labels import selector

MANAGED = selector(MANAGED_LABEL, "true")  # the label filter for what lockstep made
START_HINT = ("start dockerd (`sudo systemctl start docker`) or point DOCKER_HOST at a "
              "running engine")


class EngineError(LockstepError):
    """The engine refused something lockstep needed (``detail``: the engine's own words)."""

    def __init__(self, message: str, *, detail: str = "", status: int = 0):
        super().__init__(message)
        self.detail = detail or message
        self.status = status


class EngineUnreachable(EngineError):
    """No engine answered."""


class EngineTimeout(EngineError):
    """The engine did not answer within the client's timeout."""


class PullError(EngineError):
    """An image could not be pulled (unknown digest, registry down, no access)."""


def engine_text(exc: BaseException) -> str:
    """The engine's own explanation of ``exc`` (one line, no HTTP noise)."""
    text = str(getattr(exc, "explanation", "") or exc).strip()
    return " ".join(text.split())


def _unreachable(exc: BaseException) -> EngineUnreachable:
    text = engine_text(exc)
    if "Permission denied" in text or "PermissionError" in text:
        return EngineUnreachable(
            f"no access to the Docker engine ({text}); run as a member of the 'docker' group "
            "or as root, or point DOCKER_HOST at an engine this user may use", detail=text)
    return EngineUnreachable(f"no Docker engine reachable ({text}); {START_HINT}", detail=text)


def connect(*, timeout: float | None = 120) -> docker.APIClient:
    """A client for the engine ``DOCKER_HOST`` (else the local socket) names, API version
    negotiated; ``timeout`` bounds each call (None: no read timeout, for output streams)."""
    try:
        return local_only(docker.APIClient(version="auto", timeout=timeout,
                                           **docker.utils.kwargs_from_env()))
    except (DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise _unreachable(exc) from None


def local_only(client: docker.APIClient) -> docker.APIClient:
    """``client``, without requests' per-call reading of the environment (proxy variables,
    ``~/.netrc``, CA bundle variables) when it talks to a local or SSH socket
    (``http+docker://``), where none of them applies; that reading is about a quarter of
    each call's CPU in the Hub. A client over TCP is left as it is (a proxy may apply)."""
    if str(getattr(client, "base_url", "")).startswith("http+docker://"):
        client.trust_env = False
    return client


@contextmanager
def translated(doing: str) -> Iterator[None]:
    """Turn any engine failure inside the block into an ``EngineError`` about ``doing``
    (e.g. ``"start the job container"``)."""
    try:
        yield
    except EngineError:
        raise
    except APIError as exc:
        text = engine_text(exc)
        raise EngineError(f"the Docker engine refused to {doing}: {text}", detail=text,
                          status=exc.status_code or 0) from None
    except requests.exceptions.ReadTimeout:
        raise EngineTimeout(f"the Docker engine did not finish in time while trying to "
                            f"{doing}") from None
    except (requests.exceptions.ConnectionError, DockerException) as exc:
        if "timed out" in str(exc):  # a read timeout on the unix socket arrives this way
            raise EngineTimeout(f"the Docker engine did not finish in time while trying to "
                                f"{doing}") from None
        raise _unreachable(exc) from None


def info(client: docker.APIClient) -> dict:
    """``docker info``: runtimes, GPU support, CPUs, security options."""
    with translated("describe itself (docker info)"):
        return client.info()


def api_version(client: docker.APIClient) -> str:
    """The Engine API version this client speaks (``"1.41"``; negotiated with ``auto``)."""
    return str(getattr(client, "api_version", "") or "")


def ensure_network(client: docker.APIClient, project: str, name: str, *, internal: bool) -> dict:
    """Inspect (creating first if missing) ``project``'s network; refuse a foreign one, or
    one whose ``--internal`` setting is not the site's. A network from an older lockstep
    (icc on, or IPv6) is recreated when no container uses it, refused while one does."""
    with translated(f"create network {name}"):
        try:
            network = client.inspect_network(name)
        except NotFound:
            network = _create_network(client, project, name, internal=internal)
        if _outdated(network) and not network.get("Containers"):
            client.remove_network(network["Id"])
            network = _create_network(client, project, name, internal=internal)
    wanted = bridge_name(project)
    fix = (f"Remove it with `docker network rm {name}` (stop its containers first); lockstep "
           "recreates it.")
    if (network.get("Options") or {}).get(BRIDGE_OPTION) != wanted:
        raise EngineError(
            f"Docker network {name!r} exists but was not created by lockstep (its bridge is not "
            f"{wanted!r}, so the project firewall cannot guard it). {fix}")
    if _outdated(network):
        users = sorted(c.get("Name", "?") for c in (network.get("Containers") or {}).values())
        raise EngineError(
            f"Docker network {name!r} was created by an older lockstep ({_outdated(network)}), "
            f"so containers on it could reach each other; it is still used by "
            f"{', '.join(users)}. Stop those servers, jobs and services (lockstep then "
            f"recreates the network on the next start), or {fix[0].lower()}{fix[1:]}")
    if bool(network.get("Internal")) != internal:
        raise EngineError(
            f"Docker network {name!r} is {'' if network.get('Internal') else 'not '}internal, "
            f"but this site sets c.LockstepDockerSpawner.network_internal = {internal}. {fix}")
    return network


def _create_network(client: docker.APIClient, project: str, name: str, *,
                    internal: bool) -> dict:
    try:
        client.create_network(**network_create_kwargs(project, name, internal=internal))
    except APIError as exc:
        if exc.status_code != 409:  # created concurrently by another spawn
            raise
    return client.inspect_network(name)


def _outdated(network: dict) -> str:
    """Why a lockstep network lacks today's isolation ('' when it has it)."""
    if (network.get("Options") or {}).get(ICC_OPTION) != "false":
        return "inter-container traffic enabled"
    if network.get("EnableIPv6"):
        return "IPv6 enabled"
    return ""


def lockstep_networks(client: docker.APIClient) -> list[dict]:
    """Every lockstep network on the engine (``docker network ls`` entries)."""
    with translated("list lockstep's networks"):
        return list(client.networks(filters={"label": MANAGED}))


def lockstep_gateways(client: docker.APIClient) -> list[str]:
    """Gateway addresses of every lockstep bridge (where the Hub's port is admitted)."""
    return sorted({gw for net in lockstep_networks(client)
                   if (net.get("Options") or {}).get(BRIDGE_OPTION) and (gw := gateway_of(net))})


def has_volume(client: docker.APIClient, name: str) -> bool:
    with translated(f"inspect volume {name}"):
        try:
            client.inspect_volume(name)
            return True
        except NotFound:
            return False


def existing_volumes(client: docker.APIClient, names: list[str]) -> set[str]:
    """Which of ``names`` exist, in one call (the engine's name filter matches parts of
    names: only exact names are kept)."""
    if not names:
        return set()
    with translated(f"list volumes {', '.join(names)}"):
        found = (client.volumes(filters={"name": list(names)}) or {}).get("Volumes") or []
    return {v.get("Name") for v in found} & set(names)


def create_volume(client: docker.APIClient, name: str, labels: dict) -> None:
    with translated(f"create volume {name}"):
        client.create_volume(name=name, driver="local", labels=labels)


def image_labels(client: docker.APIClient, reference: str) -> dict[str, str] | None:
    """The labels of the image's config (``docker image inspect``), None when it is absent."""
    with translated(f"inspect image {reference}"):
        try:
            found = client.inspect_image(reference)
        except NotFound:
            return None
    return dict((found.get("Config") or {}).get("Labels") or {})


def has_image(client: docker.APIClient, reference: str) -> bool:
    return image_labels(client, reference) is not None


def _pull_error(reference: str, text: str) -> PullError:
    repository = reference.partition("@")[0]
    return PullError(
        f"cannot pull {reference}: {text}. Check that the digest exists in {repository} "
        "(`lockstep history PROJECT`, `lockstep sessions`) and that its registry answers "
        "(`lockstep registry start` for the local one)", detail=text)


def pull(client: docker.APIClient, reference: str, report: Callable[[str, float], None]) -> None:
    """Pull ``REPO@sha256:...``, calling ``report(message, fraction)`` about twice a second."""
    repository, _, digest = reference.partition("@")
    layers: dict[str, dict[str, int]] = {}
    last = 0.0
    try:
        with translated(f"pull {reference}"):
            for event in client.pull(repository, tag=digest, stream=True, decode=True):
                if "error" in event:
                    raise _pull_error(reference, str(event["error"]))
                track_pull_event(layers, event)
                now = time.monotonic()
                if now - last > 0.5:
                    last = now
                    fraction, message = pull_fraction(layers)
                    report(f"Pulling {reference.rsplit('/', 1)[-1][:40]}: {message}", fraction)
    except (PullError, EngineUnreachable):
        raise
    except EngineError as exc:
        raise _pull_error(reference, exc.detail) from None


def ensure_image(client: docker.APIClient, reference: str,
                 report: Callable[[str, float], None]) -> bool:
    """Pull ``reference`` (by digest) unless the engine has it; True if it was pulled."""
    if has_image(client, reference):
        return False
    report(f"Pulling {reference}", 0.0)
    pull(client, reference, report)
    return True


def inspect_container(client: docker.APIClient, name: str) -> dict | None:
    """``docker inspect`` of a container, or None when there is none by that name/id."""
    with translated(f"inspect container {name}"):
        try:
            return client.inspect_container(name)
        except NotFound:
            return None


def create_container(client: docker.APIClient, body: dict, name: str | None = None) -> str:
    """Create a container from a rendered body; its id."""
    with translated(f"create container {name or body.get('Image', '')}"):
        return client.create_container_from_config(dict(body), name)["Id"]


def start_container(client: docker.APIClient, container: str) -> None:
    with translated(f"start container {container[:12]}"):
        client.start(container)


def wait_container(client: docker.APIClient, container: str, timeout: float | None = None) -> int:
    """Wait for the container to exit; its exit code (``EngineTimeout`` after ``timeout``)."""
    with translated(f"wait for container {container[:12]}"):
        return int(client.wait(container, timeout=timeout).get("StatusCode", -1))


def attach_output(client: docker.APIClient, container: str) -> Iterator[tuple[bytes, bytes]]:
    """(stdout, stderr) chunks of a created container from its start to its end."""
    with translated(f"attach to container {container[:12]}"):
        return client.attach(container, stdout=True, stderr=True, stream=True, logs=False,
                             demux=True)


def read_archive(client: docker.APIClient, container: str, path: str) -> bytes:
    """``path`` of a (created, not necessarily started) container, as a tar archive."""
    with translated(f"read {path} from container {container[:12]}"):
        stream, _ = client.get_archive(container, path)
        return b"".join(stream)


def stop_container(client: docker.APIClient, container: str, timeout: int = 10) -> None:
    with translated(f"stop container {container[:12]}"):
        client.stop(container, timeout=timeout)


def rename_container(client: docker.APIClient, container: str, name: str) -> None:
    with translated(f"rename container {container[:12]} to {name}"):
        client.rename(container, name)


def remove_container(client: docker.APIClient, name: str) -> bool:
    """Stop and remove container ``name`` if it exists (True if there was one)."""
    with translated(f"remove container {name}"):
        try:
            client.remove_container(name, force=True, v=False)
            return True
        except NotFound:
            return False
        except APIError as exc:
            if exc.status_code == 409:  # removal already in progress
                return True
            raise


def container_logs(client: docker.APIClient, container: str, tail: int | str = 30) -> str:
    """The container's last ``tail`` log lines ('all': every line); '' if unreadable or the
    container is gone (no id)."""
    if not container:
        return ""
    try:
        return client.logs(container, stdout=True, stderr=True, tail=tail).decode(
            errors="replace")
    except (APIError, requests.exceptions.RequestException):
        return ""


def containers(client: docker.APIClient, *, labels: list[str] | None = None,
               stopped: bool = True) -> list[dict]:
    """``docker ps`` (``--all`` when ``stopped``) of the containers carrying every label
    (every container when ``labels`` is None)."""
    with translated("list containers"):
        return client.containers(all=stopped,
                                 filters={"label": labels} if labels is not None else None)


def cleanup(client: docker.APIClient, *, volumes: bool = False, networks: bool = True) -> None:
    """Remove every lockstep container (and networks, optionally volumes) by label."""
    for container in containers(client, labels=[MANAGED]):
        remove_container(client, container["Id"])
    with translated("clean up lockstep's networks and volumes"):
        if networks:
            for net in client.networks(filters={"label": MANAGED}):
                try:
                    client.remove_network(net["Id"])
                except APIError:
                    pass
        if volumes:
            for volume in (client.volumes(filters={"label": MANAGED}) or {}).get("Volumes") or []:
                try:
                    client.remove_volume(volume["Name"], force=True)
                except APIError:
                    pass


API_FORM_VERSION = "1.41"


def api_form(*, host_config: dict, create: dict) -> tuple[dict, dict]:
    """docker-py's keyword spellings of a host config (``cap_add``, ``mem_limit``...) and of
    ``create_container`` kwargs (``user``, ``environment``...) -> the Engine API's
    (``CapAdd``, ``Memory``, ``User``, ``Env``...); only the keys given come back. Pure (no
    engine call): how DockerSpawner's ``extra_host_config``/``extra_create_kwargs`` read.
    ``ValueError`` names a key docker-py does not know or a value it cannot convert."""
    out = []
    for kind, given, make in (
        ("extra_host_config", host_config,
         lambda **kw: docker.types.HostConfig(API_FORM_VERSION, **kw)),
        ("extra_create_kwargs", create,
         lambda **kw: docker.types.ContainerConfig(API_FORM_VERSION, None, None, **kw)),
    ):
        try:
            base, full = dict(make()), dict(make(**given))
        except (TypeError, DockerException) as exc:
            raise ValueError(f"{kind} = {given!r}: {engine_text(exc)}") from None
        out.append({k: v for k, v in full.items() if k not in base or base[k] != v})
    return out[0], out[1]
